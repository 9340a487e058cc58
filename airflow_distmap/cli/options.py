"""Option types shared by the sub-commands."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An option that counts something: a whole number of at least 1.

    :param text: the option's value.
    :raises argparse.ArgumentTypeError: it is not.
    """
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"Expected a whole number of at least 1, got {text!r}")
    return value
