"""sb-dsbm: Diffusion Schrödinger Bridge Matching (Shi et al. 2023) as an sbcore plugin.

`sbcore run plugin=dsbm examples/dsbm/gaussian.yaml` trains it; `sbcore bench gaussian plugin=dsbm`
compares its variants with the closed-form Gaussian Schrödinger bridge.
"""
