"""overfeat: the OverFeat networks (Sermanet et al., ICLR 2014), dense multi-scale inference,
localization, detection, training and the released-weights importer."""

from overfeat.models import ACCURATE, ARCHS, FAST, ArchSpec, ConvSpec, OverFeat, build_model

__all__ = ["ACCURATE", "ARCHS", "FAST", "ArchSpec", "ConvSpec", "OverFeat", "build_model"]
__version__ = "0.1.0"
