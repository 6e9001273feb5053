"""Configuration layers (defaults, preset, TOML, --set), presets, and configs saved
before a setting existed."""
import pytest

from core.config import Config, PRESETS, from_dict, load_config
from core.errors import InputError


def test_preset_sits_between_the_defaults_and_the_toml_file(tmp_path):
    paper = load_config(preset="paper")
    assert (paper.optimizer, paper.finetune_lr, paper.finetune_weight_decay) == ("adam", 1e-4, 1e-3)
    assert Config().optimizer == "adamw" and Config().finetune_lr != 1e-4
    f = tmp_path / "c.toml"
    f.write_text("finetune_lr = 0.0005\n")
    over = load_config(f, {"finetune_weight_decay": "0.01"}, preset="paper")
    assert (over.optimizer, over.finetune_lr, over.finetune_weight_decay) == ("adam", 0.0005, 0.01)
    with pytest.raises(InputError, match="unknown preset 'papr'"):
        load_config(preset="papr")
    assert all(k in Config.__dataclass_fields__ for p in PRESETS.values() for k in p)


def test_a_config_saved_before_a_setting_existed_keeps_its_old_behaviour():
    old = Config().to_dict()
    for k in ("expert_norm", "cmcl_negatives", "proj_heads", "pretrain_patience", "optimizer",
              "nip_positions", "cmcl_positions", "text_vectors"):
        del old[k]
    old["pretrain_positions"] = 3
    cfg = from_dict(old)
    assert (cfg.expert_norm, cfg.cmcl_negatives, cfg.proj_heads, cfg.optimizer) == (False, "cross", False, "adam")
    assert (cfg.nip_positions, cfg.cmcl_positions, cfg.pretrain_patience) == (3, 3, 0)
    assert cfg.text_vectors == 0                          # every text vector, as pooled then
    assert from_dict(Config().to_dict()) == Config()      # a current config reads back as saved


@pytest.mark.parametrize("key,value", [("cmcl_negatives", "some"), ("optimizer", "sgd"),
                                       ("nip_positions", "-1"), ("pretrain_patience", "-2"),
                                       ("cmcl_positions", "0")])
def test_new_settings_are_validated(key, value):
    with pytest.raises(InputError, match=key):
        load_config(overrides={key: value})
