"""The only package that imports torch and transformers."""

import logging

# transformers imports torchao when it is installed (the int4 generator uses it), and torchao then warns that its
# CUDA extensions do not load: true and irrelevant on a CPU, and it buried the first-run conversion line.
logging.getLogger("torchao").setLevel(logging.ERROR)
