"""stst: fast neural style transfer (Johnson et al. 2016) with VGG16 perceptual losses."""

__version__ = "0.1.0"
