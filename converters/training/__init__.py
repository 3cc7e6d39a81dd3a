"""Training: fine-tuning, distillation and quantization-aware training through one loop (``loop``).

``recipe`` (the optimizer recipe and its schedule), ``loop`` (the loop: single process or DDP),
``run`` (what finetune and distill share), ``finetune``, ``distill``, ``qat`` / ``qat_export``,
``quickstart_recipe`` (the quickstart's small ViT), ``cli`` (the ``vitedge finetune | distill`` commands).
Importing this package imports no torch; its modules do.
"""
