"""Components whose constructor rejects its arguments must not warn about being unused.

Amaranth warns (``UnusedElaboratable``) when an elaboratable is garbage-collected without
having been elaborated. A component whose ``__init__`` raises is never handed to anyone, so
that warning would only appear later, at some unrelated point of the program (with warnings as
errors, in an unrelated test). Every component of this project validates its arguments inside
:func:`rejecting`.
"""

from contextlib import contextmanager

__all__ = ["rejecting"]


@contextmanager
def rejecting(component):
    """Run a constructor's argument checks; if they raise, ``component`` will not warn.

    Usage, first thing in ``__init__``::

        with rejecting(self):
            check_count("Divisor", divisor, ...)
    """
    try:
        yield
    except BaseException:
        # Amaranth's documented-by-source switch of amaranth._unused.MustUse: this instance
        # was never built, so there is nothing to use.
        component._MustUse__silence = True
        raise
