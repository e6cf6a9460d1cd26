// The guided walkthrough: short chapters, from the written chain of thought to thinking entirely
// in continuous thoughts, then the baselines. Built from the stages the manifest ships (their
// `kind`). Every chapter's problem is one its stage answers right with the shipped weights (the
// end-to-end tests check this against `coconut solve`).

// A stage's kind and latent steps, read straight off the manifest's `kind` (the chapters are
// built from the manifest alone, before or without the engine).
const kindOf = (s) => ({
  kind: s.kind === 'pause' ? 'pause' : s.kind === 'no_cot' ? 'nocot' : 'latent',
  k: s.kind?.latent?.k ?? 0,
});

export function chapters(manifest) {
  if (manifest.family?.layout === 'seed') return seedChapters(manifest);
  const ids = manifest.stages.map((s) => s.id);
  const k = Object.fromEntries(manifest.stages.map((s) => [s.id, kindOf(s)]));
  const latent = ids.filter((id) => k[id].kind === 'latent').sort((a, b) => k[a].k - k[b].k);
  const last = latent[latent.length - 1];
  const stageNumber = (id) => k[id].k;
  const thoughts = Object.fromEntries(manifest.stages.map((s) => [s.id, s.thoughts ?? 0]));
  const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
  const c = manifest.thoughts_per_step ?? 1;
  // With coupled position ids a problem gets thoughts per column (and one for the carry column),
  // so a count is only ever said for the chapter's own problem.
  const coupled = (id) => manifest.stages.find((s) => s.id === id)?.positions === 'coupled';
  // A stage with padded operands writes (and thinks) `operand_pad` more columns above them.
  const columns = (id, problem) =>
    Math.max(...problem.map((x) => x.length)) + (manifest.stages.find((s) => s.id === id)?.operand_pad ?? 0);
  const list = [
    {
      title: 'The task',
      text: `A tiny GPT-2 (${plural(manifest.model.n_layer, 'layer')}, ${manifest.model.n_embd} numbers per position) was trained
        from scratch to add numbers of up to ${manifest.max_digits} digits. It reads the question one token at a time
        and writes the rest itself, one position after the other: that is running now in the stack. Press
        <b>Play</b> (or space) to watch it again, and select any position to look inside.`,
      stage: latent[0],
      problem: ['347', '285'],
    },
  ];
  if (latent.length > 0 && stageNumber(latent[0]) === 0) {
    list.push({
      title: 'Thinking out loud',
      text: `Stage 0 writes its working like a pupil: one column per step, least significant first
        (<i>7+5=12 write 2 carry 1</i>), then <i>&lt;eot&gt;</i> and the answer. Each written token goes back in at the
        bottom of the stack as the next input.`,
      stage: latent[0],
      problem: ['347', '285'],
    });
  }
  for (const id of latent) {
    const n = stageNumber(id);
    if (n === 0 || id === last) continue;
    list.push({
      title: `Stage ${n}: ${n} step${n > 1 ? 's' : ''} in its head`,
      text: `Now the first ${n} written step${n > 1 ? 's are' : ' is'} replaced by ${coupled(id)
        ? `continuous thoughts, ${c} per column`
        : plural(thoughts[id], 'continuous thought')}
        (orange). At a thought the model does not pick a token: its final hidden state, ${manifest.model.n_embd}
        numbers, leaves the top of the stack and enters the next position as its input. The remaining steps are
        still written.`,
      stage: id,
      problem: ['2718', '3141'],
    });
  }
  const lastProblem = ['9090', '910'];
  if (last && stageNumber(last) > 0) {
    list.push({
      title: 'All in its head',
      text: `In the last stage no step is written any more: the question, <i>&lt;bot&gt;</i>, ${coupled(last)
        ? `${c} thought${c === 1 ? '' : 's'} per column and as many for the carry (${c * (columns(last, lastProblem) + 1)} for this problem)`
        : `${plural(thoughts[last], 'thought')} (${c} per step)`}, then straight to the answer. Select a thought and look at the inspector: the LM head shows what
        it would say if it were forced to speak; the similarity shows which digit embeddings it resembles.`,
      stage: last,
      problem: lastProblem,
    });
  }
  // ": here 100.00% against 99.78% of 5000 test problems", from the manifest's figures.
  const testOf = (id) => manifest.stages.find((s) => s.id === id)?.accuracy?.sets?.find((x) => x.set === 'test');
  const compared = (x, y) => {
    const [a, b] = [testOf(x), testOf(y)];
    return a && b ? `: here ${a.greedy.toFixed(2)}% against ${b.greedy.toFixed(2)}% of ${b.n} test problems` : '';
  };
  const pause = ids.find((id) => k[id].kind === 'pause');
  const nocot = ids.find((id) => k[id].kind === 'nocot');
  if (pause) {
    list.push({
      title: 'Baseline: pauses',
      text: `The same number of extra positions, but each is fed a fixed <i>&lt;latent&gt;</i> embedding instead of the
        previous hidden state: drawn grey, with no loop. The difference in accuracy from the all-latent stage is what
        feeding the thought back adds${compared(last, pause)}. On this problem, which the thoughts carried through, the
        pauses end with a wrong answer.`,
      stage: pause,
      problem: ['9090', '910'],
      // A labelled failure of the shipped pause baseline (the end-to-end tests check it).
      failure: true,
    });
  }
  if (nocot) {
    list.push({
      title: 'Baseline: no thinking',
      text: `Trained to write the answer right after the question, with no steps and no thoughts. Press
        <b>Compare all stages</b> to see every stage answer the same problem.`,
      stage: nocot,
      problem: ['2718', '3141'],
    });
    // A labelled failure (`failure: true`; the end-to-end tests check that the stage does get it
    // wrong): long carry chains are rare among random problems.
    const test = testOf(nocot);
    if (test) {
      list.push({
        title: 'Where not thinking fails',
        text: `9990 + 10 = 10000 carries from the tens through every column above. Among random problems such chains
          are rare (each column has to sum to exactly 9 or 10), so a high score on them hides it: the baseline without
          thinking gets ${test.greedy.toFixed(2)}% of ${test.n} random test problems right, yet writes a wrong answer
          here. Press <b>Compare all stages</b> to see which stages carry it through.`,
        stage: nocot,
        problem: ['9990', '10'],
        failure: true,
      });
    }
  }
  return list;
}

// An imported checkpoint of the seed's family (a GPT-2 fine-tuned with Coconut elsewhere): what
// its stages do, with no claim about its answers (the verdict beside each says it; its accuracy is
// what `coconut eval` measures).
function seedChapters(manifest) {
  const byK = (k) => manifest.stages.find((s) => (s.kind?.latent?.k ?? -1) === k)?.id;
  const problem = ['347', '285'];
  const list = [
    {
      title: "The seed's GPT-2",
      text: `This folder holds a GPT-2 of the seed's family (${manifest.model.n_layer} layers, ${manifest.model.n_embd} numbers
        per position, GPT-2's own vocabulary), imported from a PyTorch or Hugging Face checkpoint: it reads additions
        of two numbers of the same length, 2 to 4 digits, laid out as the seed's Coconut curriculum lays them out.
        Press <b>Play</b> (or space) to watch it, and select any position to look inside.`,
      stage: byK(0),
      problem,
    },
    {
      title: 'The last steps in its head',
      text: `From stage 1 on, its <i>last</i> steps become continuous thoughts, one per step: the first steps are given
        written, units first, then the thoughts, then <i>&lt;eot&gt;</i> is fed and the answer follows.`,
      stage: byK(1) ?? byK(2),
      problem,
    },
    {
      title: 'All in its head',
      text: `In stage 3 every column is a thought (as many as the operands have digits): the question,
        <i>&lt;bot&gt;</i>, the thoughts, <i>&lt;eot&gt;</i>, the answer.`,
      stage: byK(3),
      problem,
    },
  ];
  return list.filter((c) => c.stage);
}
