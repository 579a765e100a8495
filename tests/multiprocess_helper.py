"""Driver of tests/test_multiprocess.py's subprocesses: registers the tiny test variant, then
runs the ``keras-efficientnet`` command (or, started by the launcher, a training worker)."""

import os
import sys

sys.modules.setdefault("triton", None)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_efficientnet.specs import get_spec, register_variant  # noqa: E402

TINY = "tiny_b0_for_multiprocess"
register_variant(get_spec("EfficientNetB0").replace(name=TINY, width=0.25, depth=0.1),
                 overwrite=True)

if os.environ.get("KE_TEST_STEP_SLEEP"):  # slow the steps so that a test can kill mid-epoch
    import time

    from keras_efficientnet.training import multiprocess

    _original = multiprocess._callback

    def _slow_callback(*args):
        callback = _original(*args)
        end = callback.on_train_batch_end

        def on_train_batch_end(batch, logs=None):
            end(batch, logs)
            time.sleep(float(os.environ["KE_TEST_STEP_SLEEP"]))

        callback.on_train_batch_end = on_train_batch_end
        return callback

    multiprocess._callback = _slow_callback

if __name__ == "__main__":
    if os.environ.get("KE_TRAIN_KWARGS"):
        from keras_efficientnet.commands.train import worker_main
        sys.exit(worker_main())
    from keras_efficientnet.cli import main
    sys.exit(main(sys.argv[1:]))
