"""The one registry of guideline citations that every card cites (source.label / source.url)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Guideline:
    id: str
    label: str
    url: str
    recommendation: str


GUIDELINES: dict[str, Guideline] = {
    g.id: g
    for g in (
        Guideline(
            "acp-2017",
            "ACP 2017: Noninvasive treatments for acute, subacute and chronic low back pain",
            "https://www.acpjournals.org/doi/10.7326/M16-2367",
            "Most acute or subacute LBP improves over time regardless of treatment: choose "
            "nonpharmacologic treatment first (superficial heat, massage, acupuncture, spinal "
            "manipulation); if drugs are desired, NSAIDs or skeletal muscle relaxants.",
        ),
        Guideline(
            "acp-2011-imaging",
            "ACP 2011: Diagnostic imaging for low back pain, advice for high-value care",
            "https://www.acpjournals.org/doi/10.7326/0003-4819-154-3-201102010-00008",
            "Do not image nonspecific LBP routinely; image for severe or progressive neurologic "
            "deficits or suspected serious underlying conditions. Age > 50 and unexplained weight "
            "loss are weaker risk factors: defer imaging after a trial of therapy.",
        ),
        Guideline(
            "acr-ac-lbp-2021",
            "ACR Appropriateness Criteria: Low Back Pain (2021)",
            "https://acsearch.acr.org/docs/69483/Narrative/",
            "Acute, subacute or chronic LBP without red flags and no prior management: imaging is "
            "usually not appropriate; consider it after 6 weeks of optimal medical management.",
        ),
        Guideline(
            "choosing-wisely-nass",
            "Choosing Wisely (NASS): no advanced imaging in the first six weeks",
            "https://www.aafp.org/pubs/afp/collections/choosing-wisely/127.html",
            "Don't recommend advanced imaging (e.g. MRI) of the spine within the first six weeks "
            "in patients with non-specific acute low back pain in the absence of red flags.",
        ),
        Guideline(
            "nice-ng59",
            "NICE NG59: Low back pain and sciatica in over 16s",
            "https://www.nice.org.uk/guidance/ng59",
            "Do not routinely offer imaging in a non-specialist setting; consider risk "
            "stratification (for example STarT Back) at first contact for each new episode.",
        ),
        Guideline(
            "cdc-opioid-2022",
            "CDC Clinical Practice Guideline for Prescribing Opioids for Pain (2022)",
            "https://www.cdc.gov/mmwr/volumes/71/rr/rr7103a1.htm",
            "Maximize nonopioid therapy; if opioids are started, use immediate-release opioids at "
            "the lowest effective dose, no more than needed for the expected duration (a few days, "
            "rarely more than 7 for acute pain); reassess at >= 50 MME/day; offer naloxone; avoid "
            "concurrent benzodiazepines.",
        ),
        Guideline(
            "ags-beers-2023",
            "AGS Beers Criteria 2023: potentially inappropriate medications in older adults",
            "https://agsjournals.onlinelibrary.wiley.com/doi/10.1111/jgs.18372",
            "Avoid skeletal muscle relaxants (carisoprodol, chlorzoxazone, cyclobenzaprine, "
            "metaxalone, methocarbamol, orphenadrine) in adults 65 and older: anticholinergic "
            "effects, sedation, fracture risk, questionable effectiveness.",
        ),
        Guideline(
            "muscle-relaxant-short-course",
            "Cyclobenzaprine prescribing information: short-term use only",
            "https://dailymed.nlm.nih.gov/dailymed/search.cfm?labeltype=all&query=cyclobenzaprine",
            "Cyclobenzaprine should be used only for short periods (up to two or three weeks): "
            "adequate evidence of effectiveness for more prolonged use is not available.",
        ),
        Guideline(
            "carisoprodol-label",
            "Carisoprodol prescribing information: short-term use only",
            "https://dailymed.nlm.nih.gov/dailymed/search.cfm?labeltype=all&query=carisoprodol",
            "Carisoprodol should only be used for short periods (up to two or three weeks): "
            "adequate evidence of effectiveness for more prolonged use has not been established.",
        ),
        Guideline(
            "keele-startback",
            "Keele STarT Back Screening Tool (stratified care)",
            "https://www.keele.ac.uk/sbst/",
            "Screen each new episode; match treatment to risk: low - advice and self-management; "
            "medium - physiotherapy; high - psychologically informed physiotherapy.",
        ),
    )
}


def guideline(guideline_id: str) -> Guideline:
    return GUIDELINES[guideline_id]


@dataclass(frozen=True)
class Citation:
    """What a card cites: its source (`source.label` / `source.url`) and the guidelines its
    detail names, the source first. Decided once, on the Rule (logic/rules/)."""

    source: str
    named: tuple[str, ...]

    def __post_init__(self) -> None:
        for guideline_id in (self.source, *self.named):
            if guideline_id not in GUIDELINES:
                raise ValueError(f"unknown guideline {guideline_id!r}")

    @property
    def source_guideline(self) -> Guideline:
        return GUIDELINES[self.source]

    @property
    def named_guidelines(self) -> tuple[Guideline, ...]:
        return tuple(GUIDELINES[g] for g in self.named)
