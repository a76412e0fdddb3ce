"""Dual Diffusion Implicit Bridges (Su, Song, Meng, Ermon, ICLR 2023, arXiv 2203.08382) for sbcore."""
