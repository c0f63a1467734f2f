"""HTTP inference over an export folder (``litforge serve EXPORT_DIR``): LitServe app, request codecs, guard."""
