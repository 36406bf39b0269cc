"""Parsing CREMA-D names, finding the data, the manifest and the two split protocols."""

from __future__ import annotations

import pytest

from ser_utils import config
from ser_utils.data import dataset
from tests.conftest import make_name_folder

LFS_POINTER = (b"version https://git-lfs.github.com/spec/v1\n"
               b"oid sha256:4d7a2146fbd5ab2fa4b0d5b2c4b1f8c6de1bb7f2d1c1e43c44b0a6d0cbd1e4a1\nsize 71212\n")


@pytest.mark.parametrize("name, expected", [
    ("1001_DFA_ANG_XX.wav", (1001, "DFA", "ANG", "XX")),
    ("1091_IEO_HAP_HI.wav", (1091, "IEO", "HAP", "HI")),
    ("1050_IEO_NEU_XX.wav", (1050, "IEO", "NEU", "XX")),
    ("1076_MTI_SAD_X.wav", (1076, "MTI", "SAD", "XX")),  # some copies hold an X
])
def test_parse_good_names(name, expected):
    clip = dataset.parse_name(name)
    assert (clip.actor, clip.sentence, clip.emotion, clip.intensity) == expected


@pytest.mark.parametrize("name, reason", [
    ("1001_DFA_ANG_XX.mp3", "not a CREMA-D name"),
    ("1001-DFA-ANG-XX.wav", "not a CREMA-D name"),
    ("1001_dfa_ang_xx.wav", "not a CREMA-D name"),
    ("0999_DFA_ANG_XX.wav", "actor 999"),
    ("1092_DFA_ANG_XX.wav", "actor 1092"),
    ("1001_ABC_ANG_XX.wav", "unknown sentence"),
    ("1001_DFA_CAL_XX.wav", "unknown emotion"),
    ("1001_DFA_ANG_ZZ.wav", "unknown level"),
    ("1001_DFA_ANG_HI.wav", "not recorded at level HI"),
    ("1001_IEO_NEU_HI.wav", "not recorded at level HI"),
    ("1001_IEO_ANG_XX.wav", "not recorded at level XX"),
])
def test_parse_bad_names(name, reason):
    with pytest.raises(ValueError, match=reason):
        dataset.parse_name(name)


def test_grid_has_7462_names_and_all_parse():
    names = dataset.grid_names()
    assert len(names) == config.N_CLIPS_GRID == len(set(names))
    assert all(dataset.parse_name(n) for n in names)


def test_real_names_are_on_the_grid():
    from tests.conftest import real_clip_names

    real = set(real_clip_names())
    assert len(real) == config.N_CLIPS_RELEASED
    assert real <= set(dataset.grid_names())
    assert len(set(dataset.grid_names()) - real) == 20


def test_manifest_of_the_real_names(real_names_root):
    frame = dataset.manifest(real_names_root)
    assert len(frame) == 7442
    assert frame["actor"].nunique() == 91
    counts = frame["emotion"].value_counts()
    assert counts["NEU"] == 1087
    assert all(counts[e] == 1271 for e in config.EMOTIONS if e != "NEU")
    assert set(frame.columns) >= {"path", "actor", "sentence", "emotion", "intensity", "split", "age", "sex"}
    sexes = frame.groupby("actor")["sex"].first().value_counts()
    assert (sexes["male"], sexes["female"]) == (48, 43)
    assert (frame["corpus"] == "crema-d").all()
    sizes = frame["split"].value_counts()
    assert abs(sizes["train"] - 4950) <= 10 and abs(sizes["val"] - 260) <= 5 and abs(sizes["test"] - 2230) <= 10


@pytest.mark.parametrize("given", ["root", "audio", "flat"])
def test_locate_accepts_root_audiowav_or_flat(tmp_path, given):
    names = dataset.grid_names([1001, 1002, 1003])
    if given == "flat":
        make_name_folder(tmp_path / "wavs", names)
        data = tmp_path / "wavs"
    else:
        make_name_folder(tmp_path / "CREMA-D" / "AudioWAV", names)
        data = tmp_path / "CREMA-D" / ("AudioWAV" if given == "audio" else "")
    clips, skipped = dataset.scan(data)
    assert len(clips) == len(names) and skipped.empty


def test_demographics_joined_from_the_root_even_given_audiowav(real_names_root):
    clips, _ = dataset.scan(real_names_root / "AudioWAV")
    row = clips.loc[clips["actor"] == 1001].iloc[0]
    assert (row["age"], row["sex"]) == (51, "male")


def test_bad_names_are_skipped_and_listed(tmp_path):
    make_name_folder(tmp_path, dataset.grid_names([1001]) + ["notes.wav", "1001_DFA_ANG_HI.wav", "1001_DFA_SAD_X.wav"])
    (tmp_path / "readme.txt").write_text("not audio")
    clips, skipped = dataset.scan(tmp_path)
    assert len(clips) == 82
    reasons = dict(zip(skipped["path"].map(lambda p: p.rsplit("/", 1)[-1]), skipped["reason"]))
    assert set(reasons) == {"notes.wav", "1001_DFA_ANG_HI.wav", "1001_DFA_SAD_XX.wav"}
    assert "duplicate" in reasons["1001_DFA_SAD_XX.wav"]  # ..._X.wav sorts first and is kept
    assert (clips["file"] == "1001_DFA_SAD_XX").sum() == 1


def test_lfs_pointers_give_one_clear_error(tmp_path):
    make_name_folder(tmp_path / "AudioWAV", dataset.grid_names([1001]), content=LFS_POINTER)
    with pytest.raises(dataset.DataError, match=r"Git LFS pointers.*git lfs pull"):
        dataset.scan(tmp_path)


def test_missing_and_empty_folders_say_how_to_get_data(tmp_path):
    with pytest.raises(dataset.DataError, match="no such folder.*demo-data"):
        dataset.scan(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(dataset.DataError, match="no .wav files.*CREMA-D"):
        dataset.scan(tmp_path / "empty")


def test_synthetic_corpus_is_labelled(tmp_path):
    make_name_folder(tmp_path / "AudioWAV", dataset.grid_names([1001, 1002]))
    (tmp_path / dataset.DEMO_MARKER).write_text("{}")
    clips, _ = dataset.scan(tmp_path)
    assert (clips["corpus"] == "synthetic").all()


def test_random_split_is_stratified_and_deterministic(real_names_root):
    clips, _ = dataset.scan(real_names_root)
    a = dataset.split(clips, "random", seed=42)
    b = dataset.split(clips, "random", seed=42)
    assert (a["split"] == b["split"]).all()
    c = dataset.split(clips, "random", seed=7)
    assert (a["split"] != c["split"]).any()
    share = a.groupby("emotion")["split"].apply(lambda s: (s == "test").mean())
    assert share.between(0.295, 0.305).all()


def test_speaker_split_is_disjoint_balanced_and_deterministic(real_names_root):
    clips, _ = dataset.scan(real_names_root)
    a = dataset.split(clips, "speaker", seed=42)
    assert (a["split"] == dataset.split(clips, "speaker", seed=42)["split"]).all()
    actors_per_split = a.groupby("split")["actor"].apply(set)
    assert not (actors_per_split["train"] & actors_per_split["test"])
    assert not (actors_per_split["train"] & actors_per_split["val"])
    assert not (actors_per_split["val"] & actors_per_split["test"])
    assert a.groupby("actor")["split"].nunique().max() == 1
    share = a.groupby("emotion")["split"].apply(lambda s: (s == "test").mean())
    assert share.max() - share.min() < 0.03
    test_sex = a[a["split"] == "test"].groupby("actor")["sex"].first().value_counts(normalize=True)
    assert 0.4 < test_sex["female"] < 0.6


def test_speaker_split_needs_three_actors(tmp_path):
    make_name_folder(tmp_path, dataset.grid_names([1001, 1002]))
    clips, _ = dataset.scan(tmp_path)
    with pytest.raises(dataset.DataError, match="at least 3"):
        dataset.split(clips, "speaker")
    with pytest.raises(ValueError, match="unknown split method"):
        dataset.split(clips, "by-sentence")


def test_listener_votes_are_read_as_emotion_codes(tmp_path):
    from tests.conftest import SHARED_CREMA_D

    if not (SHARED_CREMA_D / "summaryTable.csv").is_file():
        pytest.skip("real CREMA-D metadata not present")
    (tmp_path / "processedResults").mkdir()
    (tmp_path / "processedResults" / "summaryTable.csv").write_bytes((SHARED_CREMA_D / "summaryTable.csv").read_bytes())
    votes = dataset.load_listener_votes(tmp_path)
    assert len(votes) == 7442
    assert set(votes["voice_vote"].str.split(":").explode()) <= set(config.EMOTIONS)
    intended = votes["file"].str.split("_").str[2]
    assert abs((votes["voice_vote"] == intended).mean() - 0.416) < 0.005  # the voice-only majority agreement we compute from the released votes: 41.6%
