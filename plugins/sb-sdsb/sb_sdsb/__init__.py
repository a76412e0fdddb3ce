"""sb-sdsb: Simplified Diffusion Schrödinger Bridge (Tang et al. 2024) and the original DSB (De Bortoli et al.
2021) as an sbcore plugin: discrete-time IPF on cached chains with four training targets.

`sbcore run plugin=sdsb examples/sdsb/pinwheel_checkerboard_sdsb.yaml` trains it.
"""
