"""Merging file contents: the row-level three-way merge of tables (`rows`)."""
