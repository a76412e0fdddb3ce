"""DBFS: diffusion bridges in function spaces (Park, Choi, Lim, Lee, NeurIPS 2024) on sbcore."""
