"""Token merging (ToMe, Bolya et al., ICLR 2023) for ViT and DeiT, exported with static token counts per block.

``vitedge convert MODEL --to FORMAT --token-merging R`` merges R tokens in every block (``R1,R2,…``: one
count per block; ``auto``: the largest R within ``--max-accuracy-drop``). Modules:

- :mod:`.plan` (torch free): the tokens merged and left in each block (the option itself:
  :mod:`vitedge.converters.token_merging_option`).
- :mod:`.merge`: one token-merged block (bipartite soft matching, proportional attention).
- :mod:`.model`: the classifier with a token-merged backbone, sharing the source's weights.
- :mod:`.budget`: ``auto``, the largest R within an accuracy budget.
- :mod:`.apply`: the conversion's part: resolve, swap the model in, measure the cost for the manifest.

"""
