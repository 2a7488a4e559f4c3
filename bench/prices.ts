import type { Usage } from '../shared/aws/meter.js';

/**
 * us-east-1 list prices, checked 2026-11 against the AWS pricing pages named beside each figure
 * (re-check before publishing). One table, so every figure in bench/results comes from here.
 */
export const PRICES = {
  checked: '2026-11',
  region: 'us-east-1',
  /** aws.amazon.com/dynamodb/pricing/on-demand (since Nov 2024) */
  dynamoWriteUnit: 0.625 / 1e6,
  dynamoReadUnit: 0.125 / 1e6,
  /** aws.amazon.com/dynamodb/pricing/provisioned, per unit-hour, used at 70% */
  dynamoWcuHour: 0.00065,
  dynamoRcuHour: 0.00013,
  provisionedUtilisation: 0.7,
  /** aws.amazon.com/sqs/pricing (standard queue, beyond the free tier) */
  sqsRequest: 0.4 / 1e6,
  /** aws.amazon.com/lambda/pricing (arm64) */
  lambdaRequest: 0.2 / 1e6,
  lambdaGbSecond: 0.0000133334,
  /** aws.amazon.com/api-gateway/pricing (HTTP API, first 300 M) */
  apiRequest: 1.0 / 1e6,
  /** aws.amazon.com/s3/pricing (S3 Standard) */
  s3Put: 5 / 1e6,
  s3Get: 0.4 / 1e6,
  /** aws.amazon.com/step-functions/pricing */
  sfnStandardTransition: 25 / 1e6,
  sfnExpressRequest: 1.0 / 1e6,
  /** Express duration, per GB-second (first 1,000 h/month tier), billed in 64 MB steps of 100 ms minimum */
  sfnExpressGbSecond: 0.00001667,
} as const;

export interface Dollars {
  dynamo: number;
  sqs: number;
  lambda: number;
  api: number;
  s3: number;
  total: number;
}

/** Dollars for metered usage; `provisioned` prices DynamoDB units at 70% utilisation of provisioned capacity. */
export function dollars(usage: Usage, mode: 'onDemand' | 'provisioned'): Dollars {
  const writes = usage.wru + usage.indexWrites;
  const dynamo =
    mode === 'onDemand'
      ? writes * PRICES.dynamoWriteUnit + usage.rru * PRICES.dynamoReadUnit
      : (writes * PRICES.dynamoWcuHour) / 3600 / PRICES.provisionedUtilisation +
        (usage.rru * PRICES.dynamoRcuHour) / 3600 / PRICES.provisionedUtilisation;
  const sqs = usage.sqsRequests * PRICES.sqsRequest;
  const lambda = usage.lambdaInvocations * PRICES.lambdaRequest + usage.lambdaGbSeconds * PRICES.lambdaGbSecond;
  const api = usage.apiRequests * PRICES.apiRequest;
  const s3 = usage.s3Put * PRICES.s3Put + usage.s3Get * PRICES.s3Get;
  return { dynamo, sqs, lambda, api, s3, total: dynamo + sqs + lambda + api + s3 };
}

/**
 * The same work on Step Functions. Standard: one transition per state entered (a task state per
 * task plus start and end), retries included. Express: one request plus duration in 64 MB steps,
 * plus one DynamoDB write so a job can be looked up by id as ours can.
 */
export function stepFunctions(tasksPerJob: number, attemptsPerTask: number, secondsPerJob: number) {
  const transitions = 2 + tasksPerJob * attemptsPerTask;
  return {
    standard: transitions * PRICES.sfnStandardTransition,
    express:
      PRICES.sfnExpressRequest +
      Math.max(0.1, secondsPerJob) * (64 / 1024) * PRICES.sfnExpressGbSecond +
      PRICES.dynamoWriteUnit,
  };
}
