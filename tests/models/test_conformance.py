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
