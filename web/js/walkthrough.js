// The guided walkthrough: short chapters, from the written chain of thought to thinking entirely
// in continuous thoughts, then the baselines. Built from the stages the manifest ships (their
// `kind`). Every chapter's problem is one its stage answers right with the shipped weights (the
// end-to-end tests check this against `coconut solve`).

import { stageInfo } from './panels.js';

export function chapters(manifest) {
  const ids = manifest.stages.map((s) => s.id);
  const k = Object.fromEntries(manifest.stages.map((s) => [s.id, stageInfo(s, manifest)]));
  const latent = ids.filter((id) => k[id].kind === 'latent').sort((a, b) => k[a].k - k[b].k);
  const last = latent[latent.length - 1];
  const stageNumber = (id) => k[id].k;
  const list = [
    {
      title: 'The task',
      text: `A tiny GPT-2 (${manifest.model.n_layer} layers, ${manifest.model.n_embd} numbers per position) was trained
        from scratch to add numbers of up to ${manifest.max_digits} digits. It reads the question one token at a time
        and writes the rest itself. Press <b>Solve</b> or space to watch it run, one position after the other.`,
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
      text: `Now the first ${n} written step${n > 1 ? 's are' : ' is'} replaced by continuous thought${n > 1 ? 's' : ''}
        (orange). At a thought the model does not pick a token: its final hidden state, ${manifest.model.n_embd}
        numbers, leaves the top of the stack and enters the next position as its input. The remaining steps are
        still written.`,
      stage: id,
      problem: ['5555', '4445'],
    });
  }
  if (last && stageNumber(last) > 0) {
    list.push({
      title: 'All in its head',
      text: `In the last stage every step is a continuous thought: the question, <i>&lt;bot&gt;</i>, ${stageNumber(last)}
        thoughts, then straight to the answer. Select a thought and look at the inspector: the LM head shows what
        it would say if it were forced to speak; the similarity shows which digit embeddings it resembles.`,
      stage: last,
      problem: ['9999', '1'],
    });
  }
  const pause = ids.find((id) => k[id].kind === 'pause');
  const nocot = ids.find((id) => k[id].kind === 'nocot');
  if (pause) {
    list.push({
      title: 'Baseline: pauses',
      text: `The same number of extra positions, but each is fed a fixed <i>&lt;latent&gt;</i> embedding instead of the
        previous hidden state. Compare its accuracy with the all-latent stage in the table below: the difference is
        what feeding the thought back adds. Trained as long as the curriculum, this small model also adds well without
        it: the shipped stages differ by tenths of a point (see the model card).`,
      stage: pause,
      problem: ['9999', '1'],
    });
  }
  if (nocot) {
    list.push({
      title: 'Baseline: no thinking',
      text: `Trained to write the answer right after the question, with no steps and no thoughts. Press
        <b>Compare all stages</b> to see every stage answer the same problem.`,
      stage: nocot,
      problem: ['5555', '4445'],
    });
  }
  return list;
}
