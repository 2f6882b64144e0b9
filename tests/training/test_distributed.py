"""Two logical CPU devices under MirroredStrategy train exactly like one device, and train()
runs on them.

Logical devices must be configured before TensorFlow initializes its devices, which the
other tests in this process have already done, so the comparison runs in a subprocess.
"""

import os
import subprocess
import sys
import textwrap

from tests.helpers import REPO

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf
    import keras

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
    from t2t_lite.data import TokenPairs, make_eval_dataset
    from t2t_lite.training.train_state import TrainState
    from t2t_lite.vocab import build_vocabularies
    from tests.helpers import made_up_sentences
    from tests.train_helpers import copy_task_config

    # Attention key biases have an exactly-zero true gradient (softmax is shift invariant),
    # so theirs is rounding noise that depends on the summation order; with epsilon=1e-9,
    # Adam turns that noise into +-lr steps. A larger epsilon keeps noise at noise level.
    cfg = copy_task_config(sys.argv[1], "train.clip_norm=1.0", "train.adam_epsilon=1.0e-6")
    texts = made_up_sentences(200)
    vocab, _ = build_vocabularies(cfg, sys.argv[1] + "/model", texts, texts)
    ids = vocab.encode(texts[:16])
    # Two global batches of 16 sentences; the halves have different token counts.
    pairs = TokenPairs.from_lists(ids[:8] + ids[8:], ids[::-1])
    batches = [b for b in make_eval_dataset(pairs, 10_000)]
    batches = batches + batches[:1]

    def run(strategy, split):
        keras.utils.set_random_seed(7)
        state = TrainState(cfg, vocab, vocab, strategy)
        losses = []
        for batch in batches:
            if split:
                halves = [{k: v[:5] for k, v in batch.items()}]
                halves.append({k: v[5:] for k, v in batch.items()})
                batch = strategy.experimental_distribute_values_from_function(
                    lambda ctx: halves[ctx.replica_id_in_sync_group]
                )
            stats = state.train_step([batch])
            losses.append((stats.loss, stats.target_tokens, stats.grad_norm))
        return losses, [v.numpy() for v in state.model.trainable_variables]

    one_losses, one_weights = run(tf.distribute.get_strategy(), split=False)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    from t2t_lite.training.workers import agreed_precision, gathered

    assert gathered(mirrored, 3).tolist() == [3, 3]
    assert agreed_precision(mirrored, "bfloat16") == "bfloat16"
    two_losses, two_weights = run(mirrored, split=True)
    print("one", one_losses)
    print("two", two_losses)
    np.testing.assert_allclose(np.array(two_losses), np.array(one_losses), rtol=1e-5)
    for a, b in zip(one_weights, two_weights, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-5)
    assert not np.allclose(one_losses[0][0], one_losses[-1][0])  # the weights did change

    # train() on two replicas: the time limit passes during step 1, the replicas' summed
    # votes stop both after step 2.
    from t2t_lite.training.trainer import train

    short = copy_task_config(sys.argv[1], "train.steps=5", "train.max_minutes=1.0e-9")
    result = train(short, sys.argv[1] + "/mirrored", strategy=mirrored)
    assert (result.step, result.stop_reason) == (2, "max_minutes"), result
    assert result.checkpoint.endswith("ckpt-2")
    print("OK")
    """
)


def test_two_replicas_give_the_same_loss_and_weights_as_one(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO, CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "OK" in proc.stdout
