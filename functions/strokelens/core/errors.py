"""The closed set of reasons a scan can fail, each with a sentence a clinician understands.

Codes are stable identifiers (stored in DynamoDB, returned by the API, listed in the README);
messages are for people and may be reworded.
"""

from __future__ import annotations

MESSAGES: dict[str, str] = {
    "EMPTY_FILE": "The uploaded file is empty. Please export the scan again and re-upload it.",
    "UNSUPPORTED_FORMAT": "This file is not a PNG, JPEG or DICOM image, so it cannot be read.",
    "CORRUPT_FILE": "The file looks damaged or incomplete and could not be read. Please export it again.",
    "TOO_LARGE": "The file or image is larger than this service accepts. Please upload a single slice.",
    "IMAGE_TOO_SMALL": "The image is too small to be a head scan slice. Please upload the original resolution.",
    "BAD_ASPECT_RATIO": "The image is far too wide or too tall to be a single head scan slice.",
    "BLANK_IMAGE": "The image has no usable content (it is blank or a single flat colour).",
    "DICOM_NO_PIXELS": "The DICOM file has no image data (it may be a report or structured document).",
    "DICOM_UNSUPPORTED_COMPRESSION": "The DICOM file uses a compression this service cannot decode. "
                                     "Please export it uncompressed.",
    "UNSUPPORTED_MODALITY": "This DICOM is not a CT or MR image (for example ultrasound or a dose map); "
                            "StrokeLens reads head CT and MRI slices only.",
    "UPLOAD_MISSING": "The upload could not be found. Please upload the scan again.",
    "UPLOAD_REPLACED": "The file was replaced by another upload before it could be read. Please upload it again as a new scan.",
    "UPLOAD_NOT_RECEIVED": "The file never arrived (the upload was refused, cancelled or timed out). Please upload it again.",
    "INTERNAL_ERROR": "Something went wrong on our side while reading this scan. Please try again later.",
    "READ_ABORTED": "Reading this file was started several times and never finished (it may be too demanding to "
                    "read). Please export the slice again, uncompressed, and upload it again.",
    "STUDY_TOO_LONG": "This study could not be read within the time one reading allows (too many slices, or "
                      "slices that are slow to read). Please upload a single series, or fewer slices, as a new study.",
    "NOT_PROCESSED": "The service could not start reading this scan because of a fault on our side. Please upload it again.",
}


# Warnings on a result that was read: the reading stands, with a caveat. Codes are stable, messages
# are for people; a specific detail may follow the message (``schema.Notice.of``).
WARNINGS: dict[str, str] = {
    "MODALITY_MISMATCH": "The modality chosen differs from the one in the DICOM header; the header was used.",
    "OUT_OF_DISTRIBUTION": "This does not look like the images the model was trained on, so no reading is given.",
    "INDETERMINATE": "The model's score is close to its decision threshold; review the image.",
    "SYNTHETIC_MODEL": "This model was trained on synthetic phantom images; its output is not evidence about real scans.",
    "IMAGE_CONVERTED": "The image was adjusted before reading:",
    "FILES_MISSING": "Some files of this study never arrived; the study was read from the files that did.",
    "SERIES_SKIPPED": "Some series of this study were not read (see the series list for why).",
    "MIXED_MODALITIES": "This upload mixes modalities; only the series the model reads was read.",
    "FINDING_NOT_ASSESSED": "Not every stroke type is assessed on this modality by this model:",
    "SEQUENCE_NOT_READ": "This MRI sequence is not read by this model; only diffusion-weighted (DWI) slices are.",
    "MODALITY_CHECK": "The image does not look like the modality it was declared as:",
    "NOT_ASSESSABLE": "This slice shows little or no brain (neck, skull base or vertex): it was not assessed.",
    "BURNED_IN_TEXT": "Text may be burned into the image (it may name the patient). The text is not read, and "
                      "the saved previews show only the head, not the rest of the frame.",
    "IDENTIFIERS_REMOVED_ON_SERVER": "Patient identifiers were still in the uploaded file; they were removed on the "
                                     "server and the upload was deleted after reading. Use the web app's upload, "
                                     "which removes them in your browser, so they never leave it.",
}


class ScanError(Exception):
    """An input problem that ends a scan as FAILED with a documented code.

    Raised by domain code (decoding, preprocessing); handlers turn it into a FAILED record
    and never retry it, because the same bytes would fail the same way.
    """

    def __init__(self, code: str, detail: str | None = None) -> None:
        if code not in MESSAGES:
            raise ValueError(f"unknown scan error code {code!r}")
        self.code = code
        self.message = MESSAGES[code]
        # detail is for logs and developers; it must never carry patient data.
        self.detail = detail
        super().__init__(f"{code}: {detail or self.message}")
