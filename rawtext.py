"""
Raw text as the input of NER: read from a file or standard input, cut into sentences of CoNLL-2003-style tokens, and
into documents. BBC articles, the text given to predict.py --format text, and what an LLM wrote (generate.py,
evokd.py) are all cut here, so a sentence is the same sentence wherever it came from.

    python -c "import rawtext; print(rawtext.split_sentences('Mr. Smith left the U.S. on Monday. He flew home.'))"

Tokens as CoNLL-2003 writes them (`tokenize`): U.S. keeps its dots, "do n't" and "Google 's" are split, 1,000 and
3.5 are one token. A sentence ends at . ! or ? before a capital, a digit, a quote or a bracket (`split_sentences`),
never after a title (Mr.) or an initial, and always at a line break. Documents (`split_documents`,
`text_documents`): an article (a JSONL record) is one, and in plain text a blank line ends one; context encoding
(predict.py --context) never crosses them.
"""
import re
import sys

from cli import DataError
from data import INVISIBLE, open_text

TITLES = "Mr|Mrs|Ms|Dr|St|Jr|Sr|Prof|Gen|Col|Lt|Sgt|Capt|Gov|Sen|Rep|Rev|Inc|Ltd|Co|Corp|Bros|No|vs|etc"
TOKEN_RE = re.compile(rf"""
    (?:[A-Za-z]\.){{2,}}                          # U.S. U.N. keep their dots, as in CoNLL-2003
  | (?:{TITLES})\.(?=\s+\w)                       # Mr. Smith: a title keeps its dot and ends no sentence
  | [A-Z]\.(?=\s+[A-Z])                           # the initial in J. Smith
  | \w+(?=n't\b) | n't\b                          # do n't
  | '(?:s|re|ve|ll|d|m)\b                         # Google 's, they 're
  | \d+(?:[.,:]\d+)*\w*                           # 1,000  3.5  1.13bn  (the $ and % are tokens)
  | \w+(?:[-&.]\w+|'(?!(?:s|re|ve|ll|d|m)\b)\w+)*  # words, high-speed, AT&T, O'Neill
  | \S                                            # any other character
""", re.X)
ENDS, CLOSERS = {".", "!", "?"}, {'"', "'", ")", "]"}


def tokenize(text):
    return TOKEN_RE.findall(text)


def split_sentences(text):
    """Token lists, one per sentence: a sentence ends at . ! or ? (with the quotes or brackets written
    right after it, no space between) when the next token starts with a capital, a digit or a quote;
    a line break always ends one (BBC paragraphs are lines)."""
    sentences = []
    for line in text.splitlines():
        spans = [(m.group(), m.start(), m.end()) for m in TOKEN_RE.finditer(line)]
        toks, start, i = [t for t, _, _ in spans], 0, 0
        while i < len(toks):
            if toks[i] in ENDS:
                j = i + 1
                while j < len(toks) and toks[j] in CLOSERS and spans[j][1] == spans[j - 1][2]:
                    j += 1
                if j == len(toks) or toks[j][0].isupper() or toks[j][0].isdigit() or toks[j] in ('"', "'", "("):
                    sentences.append(toks[start:j])
                    start = j
                i = j
            else:
                i += 1
        if start < len(toks):
            sentences.append(toks[start:])
    return sentences


def split_documents(text):
    """(sentences, document ids) of plain text: split_sentences' sentences, a new document after each blank line."""
    sentences, docs, doc = [], [], 0
    for line in text.splitlines():
        found = split_sentences(line)
        if not found and sentences and docs[-1] == doc:
            doc += 1  # a blank line (or one of spaces) ends the document
        sentences += found
        docs += [doc] * len(found)
    return sentences, docs


def text_documents(texts):
    """(sentences, document ids) of texts that are each a document (BBC articles): text i's sentences are
    document i's."""
    sentences, docs = [], []
    for i, text in enumerate(texts):
        found = split_sentences(text)
        sentences += found
        docs += [i] * len(found)
    return sentences, docs


def read_text(path):
    """Raw text from a file or '-' (standard input), without byte-order marks or zero-width characters."""
    if path == "-":
        data = sys.stdin.buffer.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data[:e.start].count(b"\n") + 1
            raise DataError(f"standard input:{line}: not UTF-8; send UTF-8") from None
    else:
        with open_text(path) as f:  # names the file and line of a byte that is not UTF-8
            text = f.read()
    return text.translate(dict.fromkeys(map(ord, INVISIBLE)))
