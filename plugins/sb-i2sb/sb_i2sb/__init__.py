"""sb-i2sb: Image-to-Image Schrödinger Bridge (Liu et al., ICML 2023) as an sbcore plugin.

`sbcore run examples/i2sb/mnist-sr4x-pool.yaml` trains a restoration bridge; the plugin adds the `i2sb`
method, the `i2sb` process (the discrete bridge), the `i2sb` sampler (posterior steps) and the component kind
`corruption` (jpeg-5, jpeg-10, sr4x-pool, sr4x-bicubic, blur-uni, blur-gauss, inpaint-center,
inpaint-freeform1020, inpaint-freeform2030).
"""
