"""MagicMask (Yu et al., ACML 2025): a pose-robust, single-pass face-swap model.

Where each equation lives (numbering as in ``docs/magicmask-spec.md`` §3–4):

| eq. | what | where |
|---|---|---|
| 1 | ``u = IN(conv(BN(z_t)))`` and ``x_{t→s} = f_D(f_V + f_G)`` | ``ARIEBlock.pre``, ``MagicMaskGenerator`` |
| 2 | spatial attention | ``arie.spatial_attention`` |
| 3 | channel attention | ``arie.channel_attention`` |
| 4 | identity fusion | ``arie.identity_fusion`` |
| 5 | shared Q/K/V projections | ``geometric.IdentitySharedAttention`` |
| 6 | identity-shared attention | ``geometric.identity_shared_attention`` |
| 7–12 | losses | ``magicmask.losses`` |
"""

from magicmask.config import MagicMaskConfig, create_config, list_configs
from magicmask.model.discriminators import (
    AFSADiscriminator,
    GlobalDiscriminator,
    create_discriminator,
)
from magicmask.model.generator import MagicMaskGenerator, create_generator

__all__ = [
    "AFSADiscriminator",
    "GlobalDiscriminator",
    "MagicMaskConfig",
    "MagicMaskGenerator",
    "create_config",
    "create_discriminator",
    "create_generator",
    "list_configs",
]
