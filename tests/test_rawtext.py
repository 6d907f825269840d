"""rawtext.py: raw text cut into CoNLL-2003-style tokens, sentences and documents."""
from rawtext import split_documents, split_sentences, text_documents, tokenize


def test_tokenize_like_conll():
    text = 'Time Warner\'s profits at the U.S. firm rose 76% to $1.13bn, Mr. Parsons said. "We don\'t know," he said!'
    assert tokenize(text) == ["Time", "Warner", "'s", "profits", "at", "the", "U.S.", "firm", "rose", "76", "%", "to",
                                "$", "1.13bn", ",", "Mr.", "Parsons", "said", ".", '"', "We", "do", "n't", "know", ",",
                                '"', "he", "said", "!"]
    assert tokenize("O'Neill and AT&T's high-speed") == ["O'Neill", "and", "AT&T", "'s", "high-speed"]


def test_split_sentences():
    text = ('Quarterly profits at US media giant TimeWarner jumped 76%. Mr. Parsons said "fine." Profits rose 2% '
            'to $11.1bn.\n\nIt owns 8% of Google. it hopes to grow\nPeople should "stay alert". "We are," he said.')
    sents = split_sentences(text)
    assert [" ".join(s) for s in sents] == [
        "Quarterly profits at US media giant TimeWarner jumped 76 % .",
        'Mr. Parsons said " fine . "',
        "Profits rose 2 % to $ 11.1bn .",
        "It owns 8 % of Google . it hopes to grow",
        'People should " stay alert " .',  # the quote after the space opens the next sentence
        '" We are , " he said .']


def test_plain_text_documents_end_at_blank_lines_and_articles_are_documents():
    text = "Merkel met Chirac. They talked.\nThen lunch.\n\n  \n\nChirac left. \n\nMerkel stayed."
    sents, docs = split_documents(text)
    assert sents == split_sentences(text)
    assert [" ".join(s) for s in sents] == ["Merkel met Chirac .", "They talked .", "Then lunch .", "Chirac left .",
                                            "Merkel stayed ."]
    assert docs == [0, 0, 0, 1, 2]
    sents, docs = text_documents(["Merkel met Chirac. They talked.", "", "Chirac left."])
    assert [" ".join(s) for s in sents] == ["Merkel met Chirac .", "They talked .", "Chirac left ."]
    assert docs == [0, 0, 2]
