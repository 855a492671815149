#!/usr/bin/python3
"""gensim's side of bench/word2vec.sh (run with Debian's /usr/bin/python3,
which has python3-gensim).

  train:  word2vec_gensim.py train CORPUS OUT.bin --sg 1 --epochs 5 ...
          builds the vocabulary and trains (timed apart), saves the vectors
          in the word2vec binary format, prints one line
          "@gensim vocab_s train_s total_s words" for the shell to parse.
  eval:   word2vec_gensim.py eval VECTORS QUESTIONS WORDSIM
          gensim's own evaluate_word_analogies / evaluate_word_pairs on a
          vector file, as "@geval analogy_percent n spearman".
"""
import argparse
import sys
import time


def train(a):
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence

    params = dict(sg=a.sg, hs=0, negative=a.negative, vector_size=a.size, window=a.window,
                  min_count=a.min_count, sample=a.sample, workers=a.threads, epochs=a.epochs,
                  seed=a.seed, alpha=a.alpha)
    print(f"# gensim params {params}", file=sys.stderr)
    t0 = time.perf_counter()
    corpus = LineSentence(a.corpus)
    m = Word2Vec(**params)
    m.build_vocab(corpus)
    t1 = time.perf_counter()
    _, raw = m.train(corpus, total_examples=m.corpus_count, epochs=a.epochs)
    t2 = time.perf_counter()
    m.wv.save_word2vec_format(a.out, binary=True)
    t3 = time.perf_counter()
    print(f"# gensim vocab {len(m.wv)} words; raw words {raw}", file=sys.stderr)
    print(f"@gensim {t1 - t0:.3f} {t2 - t1:.3f} {t3 - t0:.3f} {raw}")


def evaluate(a):
    from gensim.models import KeyedVectors

    kv = KeyedVectors.load_word2vec_format(a.vectors, binary=a.vectors.endswith(".bin"))
    score, sections = kv.evaluate_word_analogies(a.questions)
    total = sections[-1]
    n = len(total["correct"]) + len(total["incorrect"])
    pear, spear, oov = kv.evaluate_word_pairs(a.wordsim)
    print(f"@geval {100 * score:.2f} {n} {spear[0]:.4f}")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("corpus")
    t.add_argument("out")
    t.add_argument("--sg", type=int, default=1)
    t.add_argument("--size", type=int, default=100)
    t.add_argument("--window", type=int, default=5)
    t.add_argument("--negative", type=int, default=5)
    t.add_argument("--sample", type=float, default=1e-3)
    t.add_argument("--min-count", type=int, default=5)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--epochs", type=int, default=5)
    t.add_argument("--alpha", type=float, default=0.025)
    t.add_argument("--seed", type=int, default=1)
    e = sub.add_parser("eval")
    e.add_argument("vectors")
    e.add_argument("questions")
    e.add_argument("wordsim")
    a = ap.parse_args()
    train(a) if a.cmd == "train" else evaluate(a)


if __name__ == "__main__":
    main()
