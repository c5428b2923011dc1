"""The model card leads with AutoAttack's figure (or says it has none)."""

from serving import model_card

META = {"model_name": "m", "version": 1, "input_shape": [28, 28, 1],
        "defense": {"name": "pat", "attack": {"eps": 0.1, "norm": "linf"}}}


def _report(with_autoattack=True):
  attacks = {"fgsm": {"accuracy": 0.6, "se": 0.005, "params": {"attack": "fgsm", "eps": 0.1,
                                                             "norm": "linf"}},
             "pgd20": {"accuracy": 0.5, "se": 0.005, "params": {"attack": "pgd", "eps": 0.1,
                                                              "norm": "linf"}}}
  if with_autoattack:
    # Above PGD on its 1,000 examples (sampling noise): still the figure the card leads with.
    attacks["autoattack"] = {"accuracy": 0.51, "se": 0.0158, "num_examples": 1000,
                             "params": {"attack": "autoattack", "eps": 0.1, "norm": "linf",
                                        "num_examples": 1000}}
  return {"num_examples": 10000, "clean_accuracy": 0.8, "eps": 0.1, "attacks": attacks,
          "worst_case": {"linf@0.1": {"norm": "linf", "eps": 0.1, "attacks": ["fgsm", "pgd20"],
                                      "num_examples": 10000, "accuracy": 0.48, "se": 0.005}}}


def test_card_leads_with_autoattack_on_its_examples():
  card = model_card.build(META, _report())
  lead = card["robustness"]["headline"]
  assert lead["attack"] == "autoattack" and lead["accuracy"] == 0.51
  assert lead["num_examples"] == 1000 and lead["autoattack"]
  assert card["quantitative_analysis"]["performance_metrics"][0]["value"] == "0.5100"
  md = model_card.markdown(card)
  first = md.split("\n")[2]
  assert first == ("**Robust accuracy 51.00% ± 1.58 under autoattack (linf, eps=0.1, 1000 "
                   "test images).**")
  assert "Not evaluated with AutoAttack" not in md


def test_without_autoattack_the_card_leads_with_the_worst_case_and_says_so():
  card = model_card.build(META, _report(with_autoattack=False))
  lead = card["robustness"]["headline"]
  assert not lead["autoattack"] and lead["accuracy"] == 0.48
  assert "not AutoAttack" in model_card.markdown(card).split("\n")[2]
