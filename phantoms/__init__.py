"""Synthetic axial head-slice phantoms: CT in true Hounsfield units and DWI-like MR.

Used by the tests and to prove the training pipeline learns a 3-class
(hemorrhage / ischemic / normal), 2-modality (CT / MR) model without any patient data.
Everything is pure numpy and deterministic from the ``np.random.Generator`` passed in.

Anatomy (shared by both modalities), in a head frame that is randomly scaled, stretched,
rotated and shifted: air, scalp, a skull ring of varying thickness, a thin extra-axial CSF
layer with sulci, a gyral cortical ribbon (grey matter) over white matter, deep grey nuclei,
two lateral ventricles, a third ventricle and the interhemispheric fissure.

Lesions always lie inside brain parenchyma:

* ``hemorrhage`` -- an irregular intraparenchymal blob of random size and location
  (CT 50-90 HU hyperdense with a thin oedema halo; MR dark centre with a darker rim).
* ``ischemic`` -- a vascular-territory wedge (MCA, ACA or PCA, one side) running from near
  the midline out to the cortex (CT 15-25 HU with loss of grey/white differentiation;
  MR bright, restricted diffusion).


Modules: :mod:`phantoms.slices` (anatomy, lesions, the CT/MR renderers and display windows),
:mod:`phantoms.files` (PNG / Part-10 DICOM writers and the data-set layouts the training reads).
A top-level package so that tests, ``training/``, ``infra/`` and ``benchmarks/`` can all use it
without any of them depending on another.

CLI: ``python -m phantoms OUT --n 20 --layout modality --format png --seed 0``.
"""

from phantoms.files import (MODALITY_DIRS, PHI_TAGS, png_bytes, set_ct_display, write_dataset, write_dicom,
                            write_kaggle_layout, write_png)
from phantoms.slices import (LESIONS, Lesion, Modality, Phantom, Tissue, ct_from_display, ct_to_display, make_ct_slice,
                             make_mr_slice, make_slice, mr_to_display, to_display)

__all__ = ["LESIONS", "MODALITY_DIRS", "PHI_TAGS", "Lesion", "Modality", "Phantom", "Tissue", "ct_from_display", "ct_to_display",
           "make_ct_slice", "make_mr_slice", "make_slice", "mr_to_display", "png_bytes", "set_ct_display", "to_display",
           "write_dataset", "write_dicom", "write_kaggle_layout", "write_png"]
