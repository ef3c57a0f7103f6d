"""Sub-commands of the ``lumos`` command line (see :mod:`lumos.cli`)."""
