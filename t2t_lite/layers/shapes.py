"""Sizes for reshapes in traced graphs: constants where the sizes are static."""

import tensorflow as tf


def sizes(x: tf.Tensor, start: int = 0, stop: int | None = None) -> list:
    """The sizes of the axes `start:stop` of `x`, for a `tf.reshape`: Python ints when all
    are static (one constant in a traced graph), else slices of one Shape op (the rank must
    be known), fewer ops than a slice of `tf.shape` per size or a concat."""
    static = x.shape[start:stop].as_list()
    if None not in static:
        return static
    return tf.unstack(tf.shape(x), num=x.shape.rank)[start:stop]


def leading_sizes(x: tf.Tensor) -> list:
    """The sizes of every axis of `x` but the last, for a `tf.reshape` back to them: -1 for
    the first when the others are static (a decoding step's `[B*K, 1, D]`: one constant
    instead of a Shape, an Unpack and a Pack), else `sizes(x, 0, -1)`. A decoding step
    reshapes this way 30 times or more."""
    rest = x.shape[1:-1].as_list()
    if None not in rest and 0 not in rest:
        return [-1] + rest
    return sizes(x, 0, -1)
