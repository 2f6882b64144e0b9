import numpy as np
import tensorflow as tf

from t2t_lite.layers.attention import group_heads, merge_heads
from t2t_lite.layers.shapes import leading_sizes, sizes


def test_sizes_are_ints_where_static_and_tensors_where_not():
    seen = {}

    @tf.function(input_signature=[tf.TensorSpec([None, 1, 8], tf.float32)])
    def shapes(x):
        seen["leading"] = leading_sizes(x)
        seen["tail"] = sizes(x, 1)
        seen["all"] = sizes(x)
        return tf.stack(seen["all"])

    assert shapes(tf.zeros([3, 1, 8])).numpy().tolist() == [3, 1, 8]
    assert seen["leading"] == [-1, 1]
    assert seen["tail"] == [1, 8]
    assert all(isinstance(s, tf.Tensor) for s in seen["all"])


def test_leading_sizes_of_dynamic_or_empty_axes_come_from_the_shape():
    @tf.function(input_signature=[tf.TensorSpec([None, None, 4], tf.float32)])
    def back(x):
        return tf.reshape(tf.reshape(x, [-1, 4]), leading_sizes(x) + [4])

    x = tf.reshape(tf.range(24, dtype=tf.float32), [2, 3, 4])
    np.testing.assert_array_equal(back(x).numpy(), x.numpy())
    empty = tf.zeros([2, 0, 4])  # -1 cannot be inferred for an empty tensor
    assert [int(s) for s in leading_sizes(empty)] == [2, 0]


def test_merge_heads_undoes_group_heads():
    x = tf.random.stateless_normal([6, 2, 8], seed=[1, 2])  # R*K = 3*2 rows, T = 2, D = 8
    grouped = group_heads(x, 3, num_heads=2)
    assert grouped.shape == [3, 2, 4, 4]  # [R, H, K*T, D/H]
    # Row r*K + k's position t is position k*T + t of group r.
    np.testing.assert_array_equal(grouped[1, 0, 2].numpy(), x[3, 0, :4].numpy())
    np.testing.assert_array_equal(merge_heads(grouped, x, 8).numpy(), x.numpy())
