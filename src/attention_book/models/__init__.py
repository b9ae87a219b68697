"""Models, one file per family: seq2seq (GRU encoder-decoders), transformer."""
