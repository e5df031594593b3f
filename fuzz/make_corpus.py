# Writes the seed corpus of the fuzz targets into fuzz/corpus/<target>/ (python3 fuzz/make_corpus.py).
# Reproducers of crashes found by fuzzing are kept beside the seeds as crash_* (added by hand when
# the fuzzer finds them; tests/fuzz/test_fuzz_regressions.cpp replays every file of the corpus).
import os, struct
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
def npy(descr, shape, payload, fortran=False, version=1, pad=True, dict_override=None):
    d = dict_override or ("{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, "True" if fortran else "False", shape))
    pre = 10 if version == 1 else 12
    if pad:
        d += " " * ((64 - (pre + len(d) + 1) % 64) % 64)
    d += "\n"
    hb = d.encode()
    if version == 1:
        h = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hb))
    else:
        h = b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(hb))
    return h + hb + payload
f8 = lambda *v: struct.pack("<%dd" % len(v), *v)
f4 = lambda *v: struct.pack("<%df" % len(v), *v)
def put(target, name, data):
    os.makedirs(f"{root}/{target}", exist_ok=True)
    if isinstance(data, str): data = data.encode()
    open(f"{root}/{target}/{name}", "wb").write(data)

# ---- fuzz_npy
T = "fuzz_npy"
put(T, "valid_f8_2x2.npy", npy("<f8", "(2, 2)", f8(1, 2, 3, 4)))
put(T, "valid_f4_3.npy", npy("<f4", "(3,)", f4(0.5, 0.25, 0.125)))
put(T, "valid_i4_2x1.npy", npy("<i4", "(2, 1)", struct.pack("<2i", -1, 7)))
put(T, "valid_i8_scalar.npy", npy("<i8", "()", struct.pack("<q", 42)))
put(T, "valid_v2_f8.npy", npy("<f8", "(1, 2)", f8(1, 2), version=2))
put(T, "valid_v3_f4.npy", npy("<f4", "(2,)", f4(1, 2), version=3))
put(T, "valid_empty_0x3.npy", npy("<f8", "(0, 3)", b""))
put(T, "bad_fortran.npy", npy("<f8", "(2, 2)", f8(1, 2, 3, 4), fortran=True))
put(T, "bad_big_endian.npy", npy(">f8", "(1,)", f8(1)))
put(T, "bad_truncated_data.npy", npy("<f8", "(4, 4)", f8(1, 2, 3)))
put(T, "bad_huge_shape.npy", npy("<f8", "(999999999999999999, 999999999999999999)", b""))
put(T, "bad_magic.npy", b"\x93NUMPZ\x01\x00\x10\x00{'descr': '<f8'}")
put(T, "bad_version.npy", npy("<f8", "(1,)", f8(1), version=9))
put(T, "bad_header_len.npy", b"\x93NUMPY\x01\x00\xff\xff{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }")
put(T, "bad_no_shape.npy", npy("<f8", "", f8(1), dict_override="{'descr': '<f8', 'fortran_order': False, }"))
put(T, "bad_shape_text.npy", npy("<f8", "(2, x)", f8(1, 2)))

# ---- fuzz_model_json
T = "fuzz_model_json"
put(T, "valid_iso.json", '{"weights": [0.5, 0.5], "means": [[1, 0], [-1, 0]], "sd": 1.0}')
put(T, "valid_sd_list.json", '{"weights": [0.25, 0.75], "means": [[1], [-1]], "sd": [0.5, 2], "name": "m", "comment": "c"}')
put(T, "valid_var_diag.json", '{"weights": [1], "means": [[0, 1, 2]], "var_diag": [[1, 2, 3]]}')
put(T, "valid_means_npy.json", '{"weights": [0.5, 0.5], "means_npy": "m22.npy", "var_diag_npy": "v22.npy"}')
put(T, "valid_means_npy_1d.json", '{"weights": [1], "means_npy": "r3.npy"}')
put(T, "bad_weights_sum.json", '{"weights": [0.5, 0.6], "means": [[1], [2]]}')
put(T, "bad_unknown_key.json", '{"weights": [1], "means": [[1]], "cov": 2}')
put(T, "bad_ragged.json", '{"weights": [0.5, 0.5], "means": [[1, 2], [3]]}')
put(T, "bad_overflow.json", '{"weights": [1], "means": [[1e999]]}')
put(T, "bad_both_means.json", '{"weights": [1], "means": [[1]], "means_npy": "m22.npy"}')
put(T, "bad_missing_npy.json", '{"weights": [1], "means_npy": "nope.npy"}')
put(T, "bad_negative_sd.json", '{"weights": [1], "means": [[0]], "sd": -1}')
put(T, "bad_not_object.json", '[1, 2, 3]')
put(T, "bad_truncated.json", '{"weights": [0.5, 0.5], "means": [[1, 0], [-1')

# ---- fuzz_schedule_file: first byte = mode ('0' auto, '1' alpha, '2' abar, '3' bogus, +4: .npy)
T = "fuzz_schedule_file"
put(T, "json_alpha.txt", '0{"alpha": [0.9, 0.8, 0.7]}')
put(T, "json_abar.txt", '0{"abar": [0.9, 0.5, 0.1]}')
put(T, "text_alpha.txt", "1 0.99\n0.98\n0.97 0.5\n")
put(T, "text_abar.txt", "2 0.9 0.5 0.25 1e-3\n")
put(T, "npy_alpha.npy", b"5" + npy("<f8", "(3,)", f8(0.9, 0.8, 0.7)))
put(T, "npy_abar_f4.npy", b"6" + npy("<f4", "(2,)", f4(0.5, 0.25)))
put(T, "bad_npy_auto.npy", b"4" + npy("<f8", "(1,)", f8(0.5)))
put(T, "bad_npy_2d.npy", b"5" + npy("<f8", "(1, 1)", f8(0.5)))
put(T, "bad_text_auto.txt", "0 0.9 0.8")
put(T, "bad_kind.txt", "3 0.9 0.8")
put(T, "bad_token.txt", "1 0.9 abc")
put(T, "bad_abar_increasing.txt", "2 0.5 0.9")
put(T, "bad_alpha_zero.txt", "1 0.9 0")
put(T, "bad_json_two_keys.txt", '0{"alpha": [0.9], "abar": [0.9]}')
put(T, "crash_json_number_overflow.txt", '0{"alpha": [1e999]}')
put(T, "bad_empty.txt", "1")

# ---- fuzz_sweep_json (fixtures in the temporary directory: model.json, alpha.json, abar.txt)
T = "fuzz_sweep_json"
put(T, "valid_minimal.json", '{"T": [4, 8]}')
put(T, "valid_axes.json", '{"name": "s", "family": ["two-point", "random-sphere"], "d": [2, 4], "K": ["d", 3], '
    '"sd": 1, "radius": [1, 2], "model_seed": 3, "score_error": ["none", "scale"], "eps": [0, 0.1], '
    '"sampler": ["ddpm", "ddim"], "variance": "beta", "T": 16, "stop": [0, 1], "precision": "fp64", '
    '"n": 1000, "seeds": 2, "backend": "cpu", "eps_samples": 64, '
    '"tv": {"stats": "means,radial", "bins": 32, "bootstrap": 10, "reference_n": 1000}}')
put(T, "valid_model_file.json", '{"family": {"model": "model.json", "label": "m"}, "T": [4], "n": 100}')
put(T, "valid_schedules.json", '{"schedule": [{"file": "alpha.json"}, {"name": "file", "file": "abar.txt", "kind": "abar"}, '
    '{"name": "li-yan", "c0": 1, "c1": 4}, "cosine"], "T": 4}')
put(T, "valid_grids.json", '{"T": 8, "grids": [{"family": "simplex", "K": "d+1", "d": [2, 3]}, '
    '{"family": {"name": "random-sphere", "K": ["2d-1", "4*d"], "full_rank": true}}], "chunk": 64}')
put(T, "bad_unknown_key.json", '{"T": 4, "steps": 3}')
put(T, "bad_missing_T.json", '{"d": 4}')
put(T, "bad_K_expr.json", '{"T": 4, "family": "simplex", "K": "d*d"}')
put(T, "bad_simplex_K.json", '{"T": 4, "family": "simplex", "d": 2, "K": 5}')
put(T, "bad_missing_model.json", '{"family": {"model": "nope.json"}, "T": 4}')
put(T, "bad_not_json.json", '{"T": [4,')
put(T, "row_valid.jsonl", '{"key":"0123456789abcdef","sweep":"s","index":0,"params":{"family":"two-point","preset":"two-point",'
    '"model":"","model_hash":"","d":2,"K":2,"K_spec":"2","full_rank":false,"radius":2.0,"sd":1.0,"model_seed":0,'
    '"score_error":"none","eps":0.0,"sampler":"ddpm","variance":"beta","schedule":"lcw","c0":2.0,"c1":10.0,'
    '"schedule_file":"","T":8,"stop":1,"precision":"fp32","n":1000,"seed":0,"eps_samples":1024,"backend_spec":"auto",'
    '"tv_stats":"means","tv_bins":0,"tv_bootstrap":0,"tv_reference_n":0},"tv":0.1,"tv_stat":"means","tv_raw":0.12,'
    '"floor":0.02,"ci_lo":0.08,"ci_hi":0.12,"resolved":true,"stats":[{"name":"means","dims":1,"bins":32,"exact":true,'
    '"tv":0.12,"tv_corrected":0.1,"floor":0.02,"ci_lo":0.08,"ci_hi":0.12,"resolved":true}],"best":0,"nonfinite":0,'
    '"eps_score":0.0,"seconds":0.5,"eps_seconds":0.0,"wall_seconds":0.6,"elt_steps_per_s":1e6,"steps":7,"chunks":1,'
    '"backend":"cpu","device":"cpu","version":"0.1.0","finished_at":"2025-01-01T00:00:00Z"}')
put(T, "row_error.jsonl", '{"key":"k","params":{"family":"f","d":2,"K":2,"radius":null,"sd":1,"score_error":"none","eps":0,'
    '"sampler":"ddim","variance":"beta","schedule":"lcw","T":4,"n":16,"seed":1},"error":"non-finite","stats":[],"eps_score":0}')
