"""Facts every part of t2t_lite shares: the special token ids and the model directory's layout.

Special ids (fixed here and nowhere else; every vocabulary is trained to use them):

- `PAD_ID = 0`: padding; masks are derived from it (`ids != PAD_ID` may be attended).
- `UNK_ID = 1`: unknown piece.
- `BOS_ID = 2`: start of target; the decoder input is `[BOS] + target`.
- `EOS_ID = 3`: end of sentence; appended to the source (unless `model.source_eos` is false)
  and to the decoder output.

A model directory (written by `t2t-train`, read by `t2t-translate`, `t2t-evaluate`,
`t2t-export`):

    config.yaml               the resolved configuration
    vocab.model               shared SentencePiece model (or vocab.src.model + vocab.tgt.model)
    checkpoints/ckpt-N.*      the last `train.keep_checkpoints` checkpoints (model, optimizer, step)
    */checkpoint              the list of a folder's checkpoints (tf.train.CheckpointManager)
    best/ckpt-N.*, best.json  the checkpoint with the best validation BLEU, and its scores
    averaged/ckpt-N.*         the average of the last `train.average_last` checkpoints (of those
                              in the last `train.average_within` of the steps)
    */corrupt/ckpt-N.*        checkpoints found unreadable, moved aside (never deleted)
    train.lock                held by the one t2t-train writing the directory (its pid and host)
    logs/train, logs/valid    TensorBoard summaries
    data_cache/               the tokenized training corpora (shards + manifest, one folder
                              per corpus), reused by a resumed run
    ctranslate2/<name>/       CTranslate2 exports made by `t2t-translate --engine=ctranslate2`,
                              one per checkpoint, each with ctranslate2_checkpoint.json naming
                              the checkpoint it was made from
"""

PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3

CONFIG_FILE = "config.yaml"
SHARED_VOCAB = "vocab.model"
SOURCE_VOCAB = "vocab.src.model"
TARGET_VOCAB = "vocab.tgt.model"
CHECKPOINTS = "checkpoints"
CHECKPOINT_STATE = "checkpoint"
BEST = "best"
BEST_JSON = "best.json"
AVERAGED = "averaged"
CORRUPT = "corrupt"
LOCK_FILE = "train.lock"
LOGS = "logs"
DATA_CACHE = "data_cache"
CTRANSLATE2_CACHE = "ctranslate2"
CTRANSLATE2_CHECKPOINT = "ctranslate2_checkpoint.json"
