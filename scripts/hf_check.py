"""Checks a `coconut export --format hf` folder in Hugging Face transformers: GPT2LMHeadModel loads
it, the thoughts go in through inputs_embeds with the KV cache (the last hidden state, after ln_f,
or the <latent> embedding for pause), then greedy decoding until <eos>. Every call passes
position_ids explicitly: the sequence index, or with coupled positions each token's column
(written out here again from docs/positions.md, independently of the Rust code). Prints one JSON
line per problem with the whole id sequence, to compare with `coconut solve --json` on the same
weights.

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
coupled = meta.get("positions", "absolute") == "coupled"
units_first = meta.get("answer_order", "most_significant_first") == "least_significant_first"
c = meta["thoughts_per_step"]
digit_ids = {vocab[str(d)] for d in range(10)}

class Positions:
    """Position ids of one problem: the sequence index, or (coupled) the column of each token:
    column j (units = 0) has id 1 + j; marks have 0; the answer is written with columns + 1
    digits, the one of significance j at column j (most significant first, or units first);
    a written step sits at its column. With ids_ahead, every position from <bot> on takes
    instead the id of what follows it: <bot> the units column, a thought the next thought's
    column (none after the carry column's), a step's <sep> the next step's column, <eot> the
    first answer digit's, an answer digit the next digit's (none after the last)."""
    def __init__(self, a, b):
        self.a, self.b, self.columns = a, b, max(len(a), len(b))
        self.ahead = coupled and meta.get("ids_ahead", False)
        if not coupled:
            self.thoughts = meta["thoughts"]
        elif meta["thoughts"] == 0:
            self.thoughts = 0
        elif meta["all_latent"]:
            self.thoughts = (self.columns + 1) * c
        else:
            self.thoughts = min(meta["latent_steps"], self.columns + 1) * c
        self.column, self.answer_index = self.thoughts // c, None
    def id_of_column(self, j):
        return 1 + j if j <= self.columns else 0
    def significance(self, i):
        return i if units_first else self.columns - i
    def prompt(self):
        if not coupled:
            return list(range(len(self.a) + len(self.b) + 3))
        digits = lambda s: [1 + len(s) - 1 - i for i in range(len(s))]
        return digits(self.a) + [0] + digits(self.b) + [0, 1 if self.ahead else 0]
    def thought(self, index, slot):
        if not coupled:
            return index
        return self.id_of_column((slot + self.ahead) // c)
    def generated(self, index, token):
        if not coupled:
            return index
        if self.answer_index is None:
            if token == meta["eot_id"]:
                self.answer_index = 0
                return 1 + self.significance(0) if self.ahead else 0
            own = self.column
            self.column += token == vocab["<sep>"]
            return 1 + (self.column if self.ahead else own)
        if token in digit_ids and self.answer_index <= self.columns:
            written = self.answer_index + self.ahead
            self.answer_index += 1
            return 1 + self.significance(written) if written <= self.columns else 0
        return 0

def run(past, position, **inputs):
    out = model(**inputs, past_key_values=past, position_ids=torch.tensor([position]),
                use_cache=True, output_hidden_states=True)
    return out.past_key_values, out.hidden_states[-1][:, -1:], out.logits[:, -1]

for p in problems:
    a, b = (x.strip() for x in p.split("+"))
    if meta.get("operand_pad") is not None:  # both written with the longer's digits and k more
        width = max(len(a), len(b)) + meta["operand_pad"]
        a, b = a.zfill(width), b.zfill(width)
    ids = ids_of(f"{a} + {b} =") + [meta["bot_id"]]
    pos = Positions(a, b)
    with torch.no_grad():
        past, hidden, logits = run(None, pos.prompt(), input_ids=torch.tensor([ids]))
        seq = list(ids)
        for slot in range(pos.thoughts):
            emb = hidden if meta["feeds_back"] else wte[meta["latent_id"]].view(1, 1, -1)
            past, hidden, logits = run(past, [pos.thought(len(seq), slot)], inputs_embeds=emb)
            seq.append(meta["latent_id"])
        while len(seq) <= model.config.n_positions:
            nxt = int(logits.argmax(-1))
            seq.append(nxt)
            if nxt == meta["eos_id"] or len(seq) > model.config.n_positions:
                break
            position = [pos.generated(len(seq) - 1, nxt)]
            past, hidden, logits = run(past, position, input_ids=torch.tensor([[nxt]]))
    print(json.dumps({"problem": p, "ids": seq}))
