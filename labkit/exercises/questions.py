"""The labs' written questions, declared once beside the exercises: number, notebook, points, marking notes.

The question's text lives in its notebook (a heading above the answer cell); the reference
answer is the solution notebook's answer cell (metadata ``{"labkit": {"question": n}}``).
What is declared here is what the notebooks do not hold: how many points a question carries
and what earns them. The handout shows the points; the marking pages show the notes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    """One written question: its number (the id in the answer cell's metadata), notebook and points."""

    number: int
    lab: str
    title: str
    points: float
    notes: str  # what a full-marks answer contains, for the marker

    def __post_init__(self) -> None:
        if self.points <= 0:
            raise ValueError(f"points of question {self.number} must be > 0, got {self.points}")


QUESTIONS: tuple[Question, ...] = (
    Question(1, "01_dcgan", "interpret (6) and (7); only D, or only G, trained", 3,
             "(7) is D's classification log-likelihood, (6) G's reward for fooling D; D alone wins and G learns "
             "nothing; G alone exploits a frozen D; each claim backed by the one-player figure."),
    Question(2, "01_dcgan", "what G should turn P(z) into, and D's output then", 2,
             "p_g = p_data (every class, every style); D* = p_data / (p_data + p_g) = 1/2 everywhere; the loss "
             "values there; how far the run gets from it."),
    Question(3, "01_dcgan", "the generator objective of (5) and why (6) replaces it", 3,
             "min log(1 - D(G(z))); its gradient vanishes when D(G(z)) is near 0, early in training; same fixed "
             "point; the measured gradient norms of both losses read correctly."),
    Question(4, "01_dcgan", "the default run: samples, losses, stability, diversity", 3,
             "samples from noise to digits over epochs; the two losses as a game, not a descent; D(x) and D(G(z)); "
             "stability; diversity judged with the class histogram or metrics, not by eye alone."),
    Question(5, "01_dcgan", "the ablations", 4,
             "each ablation compared with the default at the same budget (samples, losses, diversity); only "
             "differences larger than the run-to-run spread named; a reason for each."),
    Question(6, "02_cgan", "training the conditional DCGAN (and with a larger nz)", 2,
             "how training went (samples, losses, label accuracy), and what a larger nz changed."),
    Question(7, "02_cgan", "could y be removed from D's input?", 3,
             "no: D then judges realism only and G may ignore y; shown by the measured label accuracy of the "
             "D(x) variant against the conditional one."),
    Question(8, "02_cgan", "more or less successful than without labels, and why", 2,
             "compared on the same metrics; the label splits G's task and balances the classes."),
    Question(9, "02_cgan", "what z encodes", 2,
             "z carries the style (slant, thickness, size), y the content; read off the style grid's columns "
             "and rows."),
    Question(10, "03_wgan_metrics", "the losses of the vanilla GAN, the WGAN and the WGAN-GP", 3,
             "what each loss measures; a GAN's loss says who is winning; the critic's estimate of W and its "
             "scale under clipping and the penalty; read from the run's curves."),
    Question(11, "03_wgan_metrics", "mode collapse: which model, and how the table shows it", 3,
             "the collapsing model named from the class histogram and recall against precision; the other "
             "failure (the clipped WGAN) told apart."),
    Question(12, "03_wgan_metrics", "why WGAN-GP's recall is higher", 3,
             "the critic's gradient does not saturate and pulls samples towards missing modes; what the "
             "notebook's runs isolate and what they confound."),
    Question(13, "03_wgan_metrics", "what FID rewards that precision and recall separate", 3,
             "FID mixes fidelity and coverage in one number; precision and recall split them, shown on the "
             "known failures; what none of them detects."),
)

#: question number -> declaration
BY_NUMBER = {q.number: q for q in QUESTIONS}


def for_lab(lab: str) -> list[Question]:
    """The questions of one notebook, in order."""
    return [q for q in QUESTIONS if q.lab == lab]


def get(number: int) -> Question:
    """The declaration of question ``number``; a clear error for an unknown one."""
    try:
        return BY_NUMBER[int(number)]
    except (KeyError, ValueError, TypeError):
        raise ValueError(f"question: unknown number {number!r}; known: {', '.join(map(str, BY_NUMBER))}") from None
