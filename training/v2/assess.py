"""Is a CT slice assessable for intracranial haemorrhage at all? (brain inside the skull)

Whole-head CT studies include neck, skull base and vertex slices that show little or no brain. They
are not evidence either way: the study reading leaves them out (counted as not assessable, never
refused). The rule is a cheap image measure on the model input: the fraction of the slice that is
soft tissue (brain-window intensity 0.12-0.95) enclosed by bone (>= 0.97, holes filled). The
cut-off is fitted by training on labelled in-brain slices (ct-hemorrhage: every slice shows brain),
at a low percentile, and stated in the manifest. The serving copy is
``strokelens.reader.model.assess``.
"""

from strokelens.reader.model.assess import brain_fraction  # noqa: F401  (one implementation, served)
