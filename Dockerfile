# t2t_lite on the official TensorFlow GPU image (see README.md, "GPU and Docker"):
#   docker build -t t2t_lite .
#   docker run --gpus all -v $PWD/runs:/runs -v $DATA:/data t2t_lite t2t-train --config=... --model_dir=/runs/x
# The TensorFlow version in the tag must lie inside pyproject.toml's `tensorflow` range
# (tests/test_docker.py checks it).
ARG BASE_IMAGE=tensorflow/tensorflow:2.21.0-gpu
FROM ${BASE_IMAGE}

# The uid that owns what the container writes into bind mounts such as runs/; build with
# --build-arg T2T_UID="$(id -u)" to match yours.
ARG T2T_UID=1000

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# T2T_DATA_DIR: relative data.* paths are looked up in /data (mount your corpora there).
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    T2T_DATA_DIR=/data

WORKDIR /opt/t2t_lite
COPY pyproject.toml README.md ./
COPY t2t_lite/ t2t_lite/
COPY configs/ configs/
COPY scripts/ scripts/

# The base image's TensorFlow is built for the image's CUDA and cuDNN and must stay the only
# one. pip keeps an installed package that satisfies a requirement, so `tensorflow>=2.16,<2.22`
# alone would not reinstall it; but another requirement can still pull in a different
# TensorFlow: tensorflow-text X.Y requires tensorflow X.Y, and pip picks the newest
# tensorflow-text unless told otherwise. The constraint `tensorflow==<installed version>`
# makes pip choose versions that fit the installed TensorFlow, or fail the build instead of
# replacing it. (`pip install --no-deps` would protect it too, but then every other
# dependency of pyproject.toml would have to be listed here a second time.) Reading the
# version fails the build if the image's TensorFlow is not the `tensorflow` distribution
# (e.g. tf-nightly), rather than installing `tensorflow` next to it. TensorFlow 2.21 does not
# depend on TensorBoard: it is installed for `tensorboard --logdir /runs`.
# The last line checks that the installed t2t_lite and tensorflow-text load against this
# TensorFlow (-I: not from the source tree in the working directory).
RUN tf_version="$(python3 -c 'import importlib.metadata as m; print(m.version("tensorflow"))')" \
 && echo "tensorflow==${tf_version}" > /tmp/tensorflow-constraint.txt \
 && python3 -m pip install --no-cache-dir --constraint /tmp/tensorflow-constraint.txt \
      ".[export]" "tensorboard>=2.16,<2.22" \
 && rm -rf /tmp/tensorflow-constraint.txt build t2t_lite.egg-info \
 && python3 -I -c "import tensorflow as tf, tensorflow_text, t2t_lite; assert tf.__version__ == '${tf_version}'"

# A non-root user. Some base images (Ubuntu 24.04) already have a user with uid 1000
# ("ubuntu"); it is removed so that T2T_UID is ours.
RUN existing="$(getent passwd "${T2T_UID}" | cut -d: -f1 || true)" \
 && if [ -n "${existing}" ]; then userdel "${existing}"; fi \
 && useradd --no-log-init --create-home --uid "${T2T_UID}" --shell /bin/bash t2t \
 && mkdir -p /runs /data \
 && chown t2t:t2t /runs /data
# Numeric, so that Kubernetes runAsNonRoot can verify it.
USER ${T2T_UID}

# TensorBoard: docker run -p 6006:6006 -v $PWD/runs:/runs t2t_lite tensorboard --logdir /runs --bind_all
# Translation service (README.md, "Serving"): docker run -p 8080:8080 -v $PWD/runs:/runs
#   t2t_lite t2t-serve --model_dir=/runs/m30k --host=0.0.0.0
EXPOSE 6006 8080

# No wrapper entrypoint (the CUDA base images set one that prints a banner): the command
# given to `docker run` runs directly as PID 1, so `docker stop` (SIGTERM) reaches t2t-train,
# which saves a checkpoint and exits, or t2t-serve, which answers the requests in flight and
# exits. Without a command, an interactive shell.
ENTRYPOINT []
CMD ["bash"]
