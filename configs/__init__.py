"""stylenet's Hydra configs (installed as the package ``stylenet.configs``).

Importing it, as Hydra does to find the YAML files, registers the resolvers they use
(``${stylenet.mixed_precision:}``, ``${stylenet.run_name:...}``).
"""

from stylenet.resolvers import register

register()
