"""Sub-commands of the ``keras-efficientnet`` command line."""
