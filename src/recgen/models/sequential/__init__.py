"""Sequential large recommendation models (SASRec-CE, HSTU) on the shared next-item machinery."""
