"""MagicMask (Yu et al., ACML 2025): a pose-robust, single-pass face-swap model.

Where each equation lives. The spec numbers eq. 2–4, 6 and 7–12; eq. 1 and 5 are the unnumbered
steps between them (ARIE step 1 and the Q/K/V projections of §3.2), and the composition
``x_{t→s} = f_D(f_V + f_G)`` is ``MagicMaskGenerator``:

| eq. | what | where |
|---|---|---|
| 1 | ``u = IN(conv(BN(z_t)))`` | ``arie.ARIEFeatures`` |
| 2 | spatial attention | ``arie.spatial_attention`` |
| 3 | channel attention | ``arie.channel_attention`` |
| 4 | identity fusion | ``arie.identity_fusion`` |
| 5 | Q/K/V projections, W_Q and W_K shared with E_s | ``geometric.IdentitySharedAttention`` |
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
