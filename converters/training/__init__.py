"""Training: fine-tuning, distillation, quantization-aware training and the quickstart, all through one loop.

``recipe`` (the optimizer recipe: TrainConfig, schedule, augmentation), ``images`` (what the loop reads),
``loop`` (the one loop: single process or DDP), ``run`` (what finetune and distill share), ``finetune``,
``distill``, ``models`` (the starting model), ``output`` (the Hugging Face folder written),
``qat`` / ``qat_export``, ``quickstart_recipe`` (the quickstart's small ViT), ``cli`` (the
``vitedge finetune | distill`` commands). Importing this package imports no torch; its modules do.
"""
