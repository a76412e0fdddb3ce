"""Corruption operators: the component kind ``corruption`` this plugin adds, and its members."""

from sb_i2sb.corruption.base import Corrupted, Corruption
from sb_i2sb.corruption.inpaint import CenterMask, Freeform1020, Freeform2030, FreeformMask, fill_noise
from sb_i2sb.corruption.jpeg import JPEG, JPEG5, JPEG10
from sb_i2sb.corruption.linear import Bicubic, GaussianBlur, Pool, UniformBlur

#: the paper's task names (Liu et al. 2023, Sec. 4) -> operator class.
OPERATORS: dict[str, type[Corruption]] = {
    "jpeg-5": JPEG5, "jpeg-10": JPEG10, "sr4x-pool": Pool, "sr4x-bicubic": Bicubic, "blur-uni": UniformBlur,
    "blur-gauss": GaussianBlur, "inpaint-center": CenterMask, "inpaint-freeform1020": Freeform1020,
    "inpaint-freeform2030": Freeform2030,
}

__all__ = ["JPEG", "JPEG5", "JPEG10", "OPERATORS", "Bicubic", "CenterMask", "Corrupted", "Corruption",
           "Freeform1020", "Freeform2030", "FreeformMask", "GaussianBlur", "Pool", "UniformBlur", "fill_noise"]
