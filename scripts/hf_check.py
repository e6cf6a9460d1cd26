"""Checks a `coconut export --format hf` folder in Hugging Face transformers: GPT2LMHeadModel loads
it, the thoughts go in through inputs_embeds with the KV cache (the last hidden state, after ln_f,
or the <latent> embedding for pause), then greedy decoding until <eos>. Prints one JSON line per
problem with the whole id sequence, to compare with `coconut solve --json` on the same weights.

Usage: python3 scripts/hf_check.py HF_FOLDER 347+285 999+1 ...   (needs torch and transformers)
"""
import json, sys, torch
from transformers import GPT2LMHeadModel
folder, problems = sys.argv[1], sys.argv[2:]
meta = json.load(open(f"{folder}/coconut.json"))
vocab = json.load(open(f"{folder}/tokenizer.json"))["model"]["vocab"]
model = GPT2LMHeadModel.from_pretrained(folder).eval()
wte = model.transformer.wte.weight
def ids_of(text):
    out = []
    for word in text.split():
        out += [vocab[ch] for ch in word] if word.isdigit() else [vocab[word]]
    return out
for p in problems:
    a, b = p.split("+")
    ids = ids_of(f"{a} + {b} =") + [meta["bot_id"]]
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), use_cache=True, output_hidden_states=True)
        past, hidden, logits = out.past_key_values, out.hidden_states[-1][:, -1:], out.logits[:, -1]
        seq = list(ids)
        for _ in range(meta["thoughts"]):
            emb = hidden if meta["feeds_back"] else wte[meta["latent_id"]].view(1, 1, -1)
            out = model(inputs_embeds=emb, past_key_values=past, use_cache=True, output_hidden_states=True)
            past, hidden, logits = out.past_key_values, out.hidden_states[-1][:, -1:], out.logits[:, -1]
            seq.append(meta["latent_id"])
        while len(seq) <= model.config.n_positions:
            nxt = int(logits.argmax(-1))
            seq.append(nxt)
            if nxt == meta["eos_id"] or len(seq) > model.config.n_positions:
                break
            out = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True, output_hidden_states=True)
            past, hidden, logits = out.past_key_values, out.hidden_states[-1][:, -1:], out.logits[:, -1]
    print(json.dumps({"problem": p, "ids": seq}))
