from recgen.testing.conformance import RecommenderConformance


class TestPop(RecommenderConformance):
    model_name = "pop"


class TestItemKNN(RecommenderConformance):
    model_name = "itemknn"
    config = {"k": 10}


class TestEASE(RecommenderConformance):
    model_name = "ease"
    config = {"l2": 10.0}


class TestBPR(RecommenderConformance):
    model_name = "bpr"
    config = {"epochs": 20, "batch_size": 64, "eval_every": 5, "lr": 0.01}


class TestSASRec(RecommenderConformance):
    model_name = "sasrec"
    config = {"epochs": 6, "eval_every": 2, "batch_size": 16, "embedding_dim": 16, "max_seq_len": 8}


class TestHSTU(RecommenderConformance):
    model_name = "hstu"
    config = {"epochs": 6, "eval_every": 2, "batch_size": 16, "embedding_dim": 16, "max_seq_len": 8}


class TestMultVAE(RecommenderConformance):
    model_name = "multvae"
    config = {"epochs": 10, "eval_every": 5, "batch_size": 16, "hidden_dim": 32, "latent_dim": 8}


class TestDiffRec(RecommenderConformance):
    model_name = "diffrec"
    config = {"epochs": 10, "eval_every": 5, "batch_size": 16, "hidden_dims": "32", "lr": 1e-3}


class TestDiffRecWithInferenceNoise(RecommenderConformance):
    # T' > 0 makes inference stochastic: per-query seeded noise must keep every contract
    model_name = "diffrec"
    config = {"epochs": 4, "eval_every": 2, "batch_size": 16, "hidden_dims": "32", "sampling_noise_steps": 3}


class TestLDiffRec(RecommenderConformance):
    model_name = "ldiffrec"
    config = {"epochs": 10, "eval_every": 5, "batch_size": 16, "latent_dim": 16, "hidden_dims": "16", "svd_dim": 8}


class TestDreamRec(RecommenderConformance):
    model_name = "dreamrec"
    config = {"epochs": 4, "eval_every": 2, "batch_size": 16, "embedding_dim": 16, "max_seq_len": 8, "steps": 20}


class TestDiffRecStepsChosenOnValidation(RecommenderConformance):
    model_name = "diffrec"
    config = {"epochs": 4, "eval_every": 2, "batch_size": 16, "hidden_dims": "32", "steps": 10, "inference_steps": -1}


class TestTIGER(RecommenderConformance):
    model_name = "tiger"
    config = {
        "tokenizer": "rqkmeans", "embeddings": "svd", "svd_dim": 4, "codebook_size": 4, "levels": 2,
        "d_model": 16, "ffn_dim": 32, "n_heads": 2, "epochs": 4, "eval_every": 2, "batch_size": 16, "beam": 8,
    }  # fmt: skip


class TestTIGERUnconstrained(RecommenderConformance):
    model_name = "tiger"
    config = {
        "tokenizer": "id", "embeddings": "svd", "d_model": 16, "ffn_dim": 32, "epochs": 2, "eval_every": 2,
        "batch_size": 16, "beam": 6, "constrained": False,
    }  # fmt: skip
