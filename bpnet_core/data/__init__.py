"""Data: datasets (synthetic, COCO download), COCO joint mapping, label targets, augmentation and input pipelines."""
