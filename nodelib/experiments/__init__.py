"""Full experiments: the GPU-scale (or long-running) side of each chapter.

Each experiment is a module runnable as ``python -m nodelib.experiments.<name> --help``. They share the
conventions of :mod:`nodelib.experiments._common`: a ``--device`` option (default: the best available),
progress bars, and results written atomically as JSON that records the machine, the software versions and
the code revision. The chapters read the recorded files and name the machine that produced them.

- ``adjoint_memory`` (chapter 2): peak memory and time of backpropagation, the adjoint and checkpointing
  as the number of solver steps grows.
"""
