"""The built-in substance catalogue, as data: bases, salts and their molecular formulas.

Conversion factors are not typed in here: :mod:`permitnet.protocol.catalogue` computes each
salt's anhydrous-base factor from these formulas and the atomic weights below, so that
every factor can be re-derived and checked by anyone.

Sources: the controlled status (Convention and schedule) follows the INCB "Yellow List"
(Single Convention on Narcotic Drugs, 1961) and "Green List" (Convention on Psychotropic
Substances, 1971); molecular formulas are those of the substances' monographs (INN, Ph. Eur.,
USP). Atomic weights are the IUPAC/CIAAW abridged standard atomic weights (2021), five
significant figures. This is a realistic working subset of the Lists, not all of them: the
registry publishes the edition in force.
"""

from __future__ import annotations

from typing import Final

#: The edition identifier of this catalogue; the registry names the edition in force.
EDITION: Final = "permitnet-2026.1"

#: IUPAC/CIAAW abridged standard atomic weights (2021), as exact decimal strings.
ATOMIC_WEIGHTS: Final[dict[str, str]] = {
    "H": "1.0080",
    "C": "12.011",
    "N": "14.007",
    "O": "15.999",
    "F": "18.998",
    "Na": "22.990",
    "P": "30.974",
    "S": "32.06",
    "Cl": "35.45",
    "Br": "79.904",
}

#: Controlled base substances: (code, name, convention, schedule, molecular formula).
BASES: Final[tuple[tuple[str, str, str, str, str], ...]] = (
    # Single Convention 1961, Schedule I.
    ("alfentanil", "Alfentanil", "1961", "I", "C21H32N6O3"),
    ("cocaine", "Cocaine", "1961", "I", "C17H21NO4"),
    ("diphenoxylate", "Diphenoxylate", "1961", "I", "C30H32N2O2"),
    ("fentanyl", "Fentanyl", "1961", "I", "C22H28N2O"),
    ("hydrocodone", "Hydrocodone", "1961", "I", "C18H21NO3"),
    ("hydromorphone", "Hydromorphone", "1961", "I", "C17H19NO3"),
    ("levorphanol", "Levorphanol", "1961", "I", "C17H23NO"),
    ("methadone", "Methadone", "1961", "I", "C21H27NO"),
    ("morphine", "Morphine", "1961", "I", "C17H19NO3"),
    ("oripavine", "Oripavine", "1961", "I", "C18H19NO3"),
    ("oxycodone", "Oxycodone", "1961", "I", "C18H21NO4"),
    ("oxymorphone", "Oxymorphone", "1961", "I", "C17H19NO4"),
    ("pethidine", "Pethidine", "1961", "I", "C15H21NO2"),
    ("sufentanil", "Sufentanil", "1961", "I", "C22H30N2O2S"),
    ("thebaine", "Thebaine", "1961", "I", "C19H21NO3"),
    # Single Convention 1961, Schedule II.
    ("codeine", "Codeine", "1961", "II", "C18H21NO3"),
    ("dextropropoxyphene", "Dextropropoxyphene", "1961", "II", "C22H29NO2"),
    ("dihydrocodeine", "Dihydrocodeine", "1961", "II", "C18H23NO3"),
    ("ethylmorphine", "Ethylmorphine", "1961", "II", "C19H23NO3"),
    ("pholcodine", "Pholcodine", "1961", "II", "C23H30N2O4"),
    # Convention on Psychotropic Substances 1971, Schedule I.
    ("lysergide", "Lysergide (LSD)", "1971", "I", "C20H25N3O"),
    ("midomafetamine", "Midomafetamine (MDMA)", "1971", "I", "C11H15NO2"),
    ("psilocybine", "Psilocybine", "1971", "I", "C12H17N2O4P"),
    # 1971, Schedule II.
    ("amfetamine", "Amfetamine", "1971", "II", "C9H13N"),
    ("dexamfetamine", "Dexamfetamine", "1971", "II", "C9H13N"),
    ("dronabinol", "Dronabinol (delta-9-tetrahydrocannabinol)", "1971", "II", "C21H30O2"),
    ("gamma-hydroxybutyric-acid", "Gamma-hydroxybutyric acid (GHB)", "1971", "II", "C4H8O3"),
    ("metamfetamine", "Metamfetamine", "1971", "II", "C10H15N"),
    ("methylphenidate", "Methylphenidate", "1971", "II", "C14H19NO2"),
    ("secobarbital", "Secobarbital", "1971", "II", "C12H18N2O3"),
    # 1971, Schedule III.
    ("amobarbital", "Amobarbital", "1971", "III", "C11H18N2O3"),
    ("buprenorphine", "Buprenorphine", "1971", "III", "C29H41NO4"),
    ("butalbital", "Butalbital", "1971", "III", "C11H16N2O3"),
    ("cathine", "Cathine", "1971", "III", "C9H13NO"),
    ("flunitrazepam", "Flunitrazepam", "1971", "III", "C16H12FN3O3"),
    ("pentazocine", "Pentazocine", "1971", "III", "C19H27NO"),
    ("pentobarbital", "Pentobarbital", "1971", "III", "C11H18N2O3"),
    # 1971, Schedule IV.
    ("alprazolam", "Alprazolam", "1971", "IV", "C17H13ClN4"),
    ("bromazepam", "Bromazepam", "1971", "IV", "C14H10BrN3O"),
    ("chlordiazepoxide", "Chlordiazepoxide", "1971", "IV", "C16H14ClN3O"),
    ("clonazepam", "Clonazepam", "1971", "IV", "C15H10ClN3O3"),
    ("diazepam", "Diazepam", "1971", "IV", "C16H13ClN2O"),
    ("lorazepam", "Lorazepam", "1971", "IV", "C15H10Cl2N2O2"),
    ("midazolam", "Midazolam", "1971", "IV", "C18H13ClFN3"),
    ("nitrazepam", "Nitrazepam", "1971", "IV", "C15H11N3O3"),
    ("oxazepam", "Oxazepam", "1971", "IV", "C15H11ClN2O2"),
    ("phenobarbital", "Phenobarbital", "1971", "IV", "C12H12N2O3"),
    ("phentermine", "Phentermine", "1971", "IV", "C10H15N"),
    ("temazepam", "Temazepam", "1971", "IV", "C16H13ClN2O2"),
    ("zolpidem", "Zolpidem", "1971", "IV", "C19H21N3O"),
)

#: Salts and hydrates: (code, name, base code, base molecules per formula unit, components).
#: Components are (count as a decimal string, formula); their sum is the salt's formula unit.
SALTS: Final[tuple[tuple[str, str, str, int, tuple[tuple[str, str], ...]], ...]] = (
    (
        "alfentanil-hydrochloride-monohydrate",
        "Alfentanil hydrochloride monohydrate",
        "alfentanil",
        1,
        (("1", "C21H32N6O3"), ("1", "HCl"), ("1", "H2O")),
    ),
    (
        "cocaine-hydrochloride",
        "Cocaine hydrochloride",
        "cocaine",
        1,
        (("1", "C17H21NO4"), ("1", "HCl")),
    ),
    (
        "diphenoxylate-hydrochloride",
        "Diphenoxylate hydrochloride",
        "diphenoxylate",
        1,
        (("1", "C30H32N2O2"), ("1", "HCl")),
    ),
    ("fentanyl-citrate", "Fentanyl citrate", "fentanyl", 1, (("1", "C22H28N2O"), ("1", "C6H8O7"))),
    (
        "hydrocodone-bitartrate-hemipentahydrate",
        "Hydrocodone bitartrate hemipentahydrate",
        "hydrocodone",
        1,
        (("1", "C18H21NO3"), ("1", "C4H6O6"), ("2.5", "H2O")),
    ),
    (
        "hydromorphone-hydrochloride",
        "Hydromorphone hydrochloride",
        "hydromorphone",
        1,
        (("1", "C17H19NO3"), ("1", "HCl")),
    ),
    (
        "levorphanol-tartrate-dihydrate",
        "Levorphanol tartrate dihydrate",
        "levorphanol",
        1,
        (("1", "C17H23NO"), ("1", "C4H6O6"), ("2", "H2O")),
    ),
    (
        "methadone-hydrochloride",
        "Methadone hydrochloride",
        "methadone",
        1,
        (("1", "C21H27NO"), ("1", "HCl")),
    ),
    (
        "morphine-hydrochloride-trihydrate",
        "Morphine hydrochloride trihydrate",
        "morphine",
        1,
        (("1", "C17H19NO3"), ("1", "HCl"), ("3", "H2O")),
    ),
    (
        "morphine-sulfate",
        "Morphine sulfate (anhydrous)",
        "morphine",
        2,
        (("2", "C17H19NO3"), ("1", "H2SO4")),
    ),
    (
        "morphine-sulfate-pentahydrate",
        "Morphine sulfate pentahydrate",
        "morphine",
        2,
        (("2", "C17H19NO3"), ("1", "H2SO4"), ("5", "H2O")),
    ),
    (
        "oxycodone-hydrochloride",
        "Oxycodone hydrochloride",
        "oxycodone",
        1,
        (("1", "C18H21NO4"), ("1", "HCl")),
    ),
    (
        "oxymorphone-hydrochloride",
        "Oxymorphone hydrochloride",
        "oxymorphone",
        1,
        (("1", "C17H19NO4"), ("1", "HCl")),
    ),
    (
        "pethidine-hydrochloride",
        "Pethidine hydrochloride",
        "pethidine",
        1,
        (("1", "C15H21NO2"), ("1", "HCl")),
    ),
    (
        "sufentanil-citrate",
        "Sufentanil citrate",
        "sufentanil",
        1,
        (("1", "C22H30N2O2S"), ("1", "C6H8O7")),
    ),
    (
        "codeine-phosphate-hemihydrate",
        "Codeine phosphate hemihydrate",
        "codeine",
        1,
        (("1", "C18H21NO3"), ("1", "H3PO4"), ("0.5", "H2O")),
    ),
    (
        "codeine-phosphate-sesquihydrate",
        "Codeine phosphate sesquihydrate",
        "codeine",
        1,
        (("1", "C18H21NO3"), ("1", "H3PO4"), ("1.5", "H2O")),
    ),
    (
        "codeine-sulfate-trihydrate",
        "Codeine sulfate trihydrate",
        "codeine",
        2,
        (("2", "C18H21NO3"), ("1", "H2SO4"), ("3", "H2O")),
    ),
    (
        "dextropropoxyphene-hydrochloride",
        "Dextropropoxyphene hydrochloride",
        "dextropropoxyphene",
        1,
        (("1", "C22H29NO2"), ("1", "HCl")),
    ),
    (
        "dextropropoxyphene-napsylate-monohydrate",
        "Dextropropoxyphene napsylate monohydrate",
        "dextropropoxyphene",
        1,
        (("1", "C22H29NO2"), ("1", "C10H8O3S"), ("1", "H2O")),
    ),
    (
        "dihydrocodeine-tartrate",
        "Dihydrocodeine tartrate",
        "dihydrocodeine",
        1,
        (("1", "C18H23NO3"), ("1", "C4H6O6")),
    ),
    (
        "ethylmorphine-hydrochloride-dihydrate",
        "Ethylmorphine hydrochloride dihydrate",
        "ethylmorphine",
        1,
        (("1", "C19H23NO3"), ("1", "HCl"), ("2", "H2O")),
    ),
    (
        "pholcodine-monohydrate",
        "Pholcodine monohydrate",
        "pholcodine",
        1,
        (("1", "C23H30N2O4"), ("1", "H2O")),
    ),
    (
        "midomafetamine-hydrochloride",
        "Midomafetamine hydrochloride",
        "midomafetamine",
        1,
        (("1", "C11H15NO2"), ("1", "HCl")),
    ),
    (
        "amfetamine-sulfate",
        "Amfetamine sulfate",
        "amfetamine",
        2,
        (("2", "C9H13N"), ("1", "H2SO4")),
    ),
    (
        "dexamfetamine-sulfate",
        "Dexamfetamine sulfate",
        "dexamfetamine",
        2,
        (("2", "C9H13N"), ("1", "H2SO4")),
    ),
    (
        "metamfetamine-hydrochloride",
        "Metamfetamine hydrochloride",
        "metamfetamine",
        1,
        (("1", "C10H15N"), ("1", "HCl")),
    ),
    (
        "methylphenidate-hydrochloride",
        "Methylphenidate hydrochloride",
        "methylphenidate",
        1,
        (("1", "C14H19NO2"), ("1", "HCl")),
    ),
    ("secobarbital-sodium", "Secobarbital sodium", "secobarbital", 1, (("1", "C12H17N2NaO3"),)),
    ("sodium-oxybate", "Sodium oxybate", "gamma-hydroxybutyric-acid", 1, (("1", "C4H7NaO3"),)),
    (
        "buprenorphine-hydrochloride",
        "Buprenorphine hydrochloride",
        "buprenorphine",
        1,
        (("1", "C29H41NO4"), ("1", "HCl")),
    ),
    (
        "pentazocine-hydrochloride",
        "Pentazocine hydrochloride",
        "pentazocine",
        1,
        (("1", "C19H27NO"), ("1", "HCl")),
    ),
    (
        "pentazocine-lactate",
        "Pentazocine lactate",
        "pentazocine",
        1,
        (("1", "C19H27NO"), ("1", "C3H6O3")),
    ),
    ("pentobarbital-sodium", "Pentobarbital sodium", "pentobarbital", 1, (("1", "C11H17N2NaO3"),)),
    (
        "chlordiazepoxide-hydrochloride",
        "Chlordiazepoxide hydrochloride",
        "chlordiazepoxide",
        1,
        (("1", "C16H14ClN3O"), ("1", "HCl")),
    ),
    (
        "midazolam-hydrochloride",
        "Midazolam hydrochloride",
        "midazolam",
        1,
        (("1", "C18H13ClFN3"), ("1", "HCl")),
    ),
    (
        "midazolam-maleate",
        "Midazolam maleate",
        "midazolam",
        1,
        (("1", "C18H13ClFN3"), ("1", "C4H4O4")),
    ),
    ("phenobarbital-sodium", "Phenobarbital sodium", "phenobarbital", 1, (("1", "C12H11N2NaO3"),)),
    (
        "phentermine-hydrochloride",
        "Phentermine hydrochloride",
        "phentermine",
        1,
        (("1", "C10H15N"), ("1", "HCl")),
    ),
    (
        "zolpidem-tartrate",
        "Zolpidem tartrate",
        "zolpidem",
        2,
        (("2", "C19H21N3O"), ("1", "C4H6O6")),
    ),
)
