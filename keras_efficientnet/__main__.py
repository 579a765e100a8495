"""``python -m keras_efficientnet``: the ``keras-efficientnet`` command (see :mod:`.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
