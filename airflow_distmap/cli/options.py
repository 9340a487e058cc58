"""Option types shared by the sub-commands."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An option that counts something: a whole number of at least 1.

    :param text: the option's value.
    :raises argparse.ArgumentTypeError: it is not.
    """
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """An option that counts something that may be none: a whole number of at least 0.

    :param text: the option's value.
    :raises argparse.ArgumentTypeError: it is not.
    """
    return _whole_number(text, 0)


def _whole_number(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        raise argparse.ArgumentTypeError(f"Expected a whole number of at least {least}, got {text!r}")
    return value
