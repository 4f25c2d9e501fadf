"""winback: find the quiet contacts of a marketing base, win back who can be won back,
and let go of the rest cleanly (suppression, then erasure when retention ends)."""

__version__ = "0.1.0.dev0"
