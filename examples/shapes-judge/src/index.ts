// @chimera-examples/shapes-judge: names the kind and colour of 32x32 generation-set images (scores generated images).
export { Judge, trainJudge, loadJudge, loadOrTrainJudge, defaultJudgeDir, judgeDataset, softened, type Verdict, type JudgeScore, type TrainJudgeOptions } from './judge';
export { JudgeNet, buildJudgeNet, type JudgeLogits } from './model';
