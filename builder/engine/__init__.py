"""The training engine: how a zoo's networks are drawn and trained.

- the search space and its draws (:mod:`~builder.engine.space`), the image sources (:mod:`~builder.engine.sources`),
  the augmentation (:mod:`~builder.engine.augment`) and the counter-based random streams
  (:mod:`~builder.engine.keyed_random`);
- training: the configuration and result types (:mod:`~builder.engine.train_config`), a network's state
  (:mod:`~builder.engine.member`), the lanes that train networks of one shape together
  (:mod:`~builder.engine.pack_lane`), packs of lanes (:mod:`~builder.engine.pack`, sized by
  :mod:`~builder.engine.pack_schedule`) and one network alone (:mod:`~builder.engine.train`, a pack of one);
- running it: tasks (:mod:`~builder.engine.task`) and executors (:mod:`~builder.engine.executors`: this process,
  worker processes, Ray).

The tools that make, check and move zoos (``python -m builder.generate``, ``reproduce``, ``merge``, ``push``,
``convert_nws``) are the modules of :mod:`builder` itself.
"""
