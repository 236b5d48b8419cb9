//! Glossary: the seed patents' terms and the one name we use for each.
//! Use these words in code, APIs, logs and docs; one word per concept.
//!
//! | seed term | our name |
//! |---|---|
//! | 绑定地址 / 绑定地址获取请求 | binding address / binding address request |
//! | 绑定操作请求, 绑定消息 | binding operation request, binding message |
//! | 验证码 (生成 / 输入), 验证信息 | OTP (issued / entered) |
//! | 支付密码 | payment password |
//! | 预留的通讯号码, 通信账户 | reserved phone |
//! | 资源存储机构 (第二服务端 / 第二客户端) | issuer (bank) server / bank app |
//! | 账户注册请求, 账户标识信息 | account registration request, account id |
//! | 预设的安全认证条件, 安全认证处理 | security condition, security authentication |
//! | 业务绑定请求, 终端设备信息 | business binding request (device pairing, `domain::device_pairing`; the code a device shows: user code), device info (`DeviceInfo`) |
//! | 转移支付协议, 支付协议信息 | transfer payment agreement (`domain::transfer_agreement`), payment agreement information (its sealed content) |
//! | 用户身份信息, 用户登陆信息 | user identity info, login info |
//! | 协议查询结果, 第一/第二协议状态 | agreement query result, first/second agreement state |
//! | 转移支付请求, 设备使用信息 | transfer payment request (`domain::transfer_payment`), device usage |
//! | 确认支付请求, 转移支付消息, 确认支付消息 | confirm payment request, transfer payment message (event `transfer_payment.message`), confirm payment message (a signed message, `crypto::signed_message`) |
//! | 支付执行任务, 支付完成消息, 支付结果通知 | payment execution task (signed by the wallet; event `transfer_payment.execution_task`), payment completion message, payment result notification (event `transfer_payment.result`) |
//! | 第一终端 / 第二终端 的标识, 对应关系 | first / second terminal id, terminal correspondence |
//! | 支付请求消息, 支付响应消息, 支付页面 | payment request, payment response, payment page |
//! | 操作信息: 滑动 / 点击 / 举起 | gesture: swipe / tap / raise |
//! | 第二服务器 (操作系统对应的服务器) | OS push relay |
//! | 验证服务器 | the wallet (in F5) |
//! | 卡发行机构服务器 | issuer |
//! | 非第一卡用户 / 第一卡用户 | existing cardholder / first-card applicant |
//! | 申请卡的信息 (用户名称, 身份识别码) | card application (name, ID number; `domain::card_application`) |
//! | 前置验证 | pre-verification |
//! | 卡代号 | card code (`domain::card_token::CardCode`) |
//! | 快捷签约, 协议号 | quick-pay signing, agreement number |
//! | 主卡号的标记化, 标记 | PAN tokenisation, card token (`domain::card_token`) |
//! | 快捷绑卡 | quick binding (`BindingStatus::quick_bound`) |
//! | 安全芯片 | secure element |
//! | 身份证正反面照片, 视频面签 | ID card photos (front/back), video face check |
//! | 公安部系统, 匹配度评分, 备查身份号码 | identity authority (`adapters::identity`), match score, reference number |
//! | 指令策略, 反查 | instruction policy (`card_application::{PhotoPolicy, VideoPolicy}`), look-up (of a score by its reference number, by the issuer) |
//! | 订单识别号码 | order id |
//! | 应用协议数据单元指令 (APDU), POS机 | APDU command, POS terminal |
//! | 扣款 | debit |
