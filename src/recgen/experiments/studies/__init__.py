"""Studies: runs that vary one thing over a single fit (diffusion steps, item codebooks, TALLRec sizes, BIGRec
stages), each writing one results JSON that ``recgen report`` tabulates."""
